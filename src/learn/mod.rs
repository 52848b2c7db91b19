//! Training: fastai's `fit_one_cycle` on the classifier, checkpoints and resume.

pub mod checkpoint;
pub mod data;
pub mod device;
pub mod learner;
pub mod metrics;
pub mod open;
pub mod optimizer;
pub mod schedule;
