//! Training: fastai's `fit_one_cycle` on the classifier, checkpoints and resume, and what
//! the lesson does with a trained learner: interpret, lr_find, export and predict; and what a
//! clinic asks beyond it: per-class metrics with intervals, calibration, Grad-CAM,
//! test-time augmentation and ONNX export ([`evaluate`] runs them together).

pub mod calibration;
pub mod callbacks;
pub mod cam;
pub mod checkpoint;
pub mod clinical;
pub mod cuda;
pub mod data;
pub mod device;
pub mod distributed;
pub mod evaluate;
pub mod export;
pub mod fit;
pub mod inference;
pub mod interpret;
pub mod learner;
pub mod lr_find;
pub mod metrics;
pub mod onnx;
pub mod open;
pub mod optimizer;
pub mod overlay;
pub mod precision;
pub mod pretrained;
pub mod schedule;
pub mod step;
