//! The lesson's data steps: fetch, list classes, split. No terminal code here.

pub mod archive;
pub mod augment;
pub mod batches;
pub mod cache;
pub mod decode;
pub mod dicom;
pub mod download;
pub mod embedded;
pub mod fetch;
pub mod identifiers;
pub mod on_device;
pub mod report;
pub mod scan;
pub mod settings;
pub mod split;
pub mod window;
