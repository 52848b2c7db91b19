//! The lesson-sized MedNIST sample compiled into the binary (see data/README.md).

/// 1,800 images, 300 per class, as `MedNIST/<Class>/<file>.jpeg` in a tar.gz.
pub const LESSON_ARCHIVE: &[u8] = include_bytes!("../../data/mednist-lesson.tar.gz");
