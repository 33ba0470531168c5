//! The one cancel handle: whoever wants a long job stopped (Ctrl-C in the CLI, the Cancel button in the app) holds a
//! clone of the token the job polls between steps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shared "please stop" flag. Clones share the flag: cancelling one cancels them all. Cancelling cannot be undone.
/// The runner, the demo and the app's worker threads all take this one type.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token nobody has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the job to stop. Returns whether it had already been asked (a second Ctrl-C, say).
    pub fn cancel(&self) -> bool {
        self.0.swap(true, Ordering::SeqCst)
    }

    /// Whether [`cancel`](Self::cancel) was called on this token or a clone of it.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_flag_and_cancel_reports_a_second_call() {
        let token = CancelToken::new();
        let clone = token.clone();
        assert!(!token.is_cancelled() && !clone.is_cancelled());
        assert!(!clone.cancel(), "the first cancel finds the flag clear");
        assert!(token.is_cancelled(), "cancelling a clone cancels the original");
        assert!(token.cancel(), "the second cancel finds it set");
    }
}
