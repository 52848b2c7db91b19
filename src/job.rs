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

    /// `Err(Cancelled)` once the token is set: the check a step makes between units of work.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() { Err(Cancelled) } else { Ok(()) }
    }
}

/// The one way a step says it stopped because its [`CancelToken`] was set: as its error, or
/// as the source of its error ([`is_cancelled`] finds it either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Whether `error` is, or was caused by, a [`Cancelled`] step.
pub fn is_cancelled(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<Cancelled>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellation_is_found_through_its_context_and_wrapping_errors() {
        let token = CancelToken::new();
        assert!(token.check().is_ok());
        token.clone().cancel();
        let error = anyhow::Error::new(token.check().unwrap_err()).context("while training");
        assert!(is_cancelled(&error));
        let fetch = anyhow::Error::new(crate::data::fetch::FetchError::from(Cancelled));
        assert!(is_cancelled(&fetch), "{fetch:#}");
        assert!(!is_cancelled(&anyhow::anyhow!("cancelled")), "only the type counts, not the words");
    }
}
