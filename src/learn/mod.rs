//! Training: fastai's `fit_one_cycle` on the classifier, checkpoints and resume, and what
//! the lesson does with a trained learner: interpret, lr_find, export and predict.

pub mod checkpoint;
pub mod data;
pub mod device;
pub mod export;
pub mod inference;
pub mod interpret;
pub mod learner;
pub mod lr_find;
pub mod metrics;
pub mod open;
pub mod optimizer;
pub mod pretrained;
pub mod schedule;
