//! Cooperative cancellation for long-running steps (downloads, training).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Cloneable flag a step polls between units of work (chunks, batches).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Returned by a step that stopped because its [`CancelToken`] was set.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;
