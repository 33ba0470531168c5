//! The one cancel handle: whoever wants a long job stopped (Ctrl-C in the CLI, the Cancel button in the app) holds a
//! clone of the token the job polls between steps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shared "please stop" flag. Clones share the flag: cancelling one cancels them all. Cancelling cannot be undone.
///
/// The runner still takes the flag as `Arc<AtomicBool>`: [`CancelToken::flag`] (or `Arc::from(token)`) gives it, and
/// a token made from an existing flag (`CancelToken::from(arc)`) shares it.
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

    /// The shared flag, for APIs that take `Arc<AtomicBool>` (the runner today).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

impl From<Arc<AtomicBool>> for CancelToken {
    fn from(flag: Arc<AtomicBool>) -> Self {
        Self(flag)
    }
}

impl From<CancelToken> for Arc<AtomicBool> {
    fn from(token: CancelToken) -> Self {
        token.0
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

    #[test]
    fn converts_from_and_into_the_runners_flag() {
        let flag = Arc::new(AtomicBool::new(false));
        let token = CancelToken::from(flag.clone());
        token.cancel();
        assert!(flag.load(Ordering::SeqCst), "a token made from a flag sets that flag");

        let token = CancelToken::new();
        let flag: Arc<AtomicBool> = token.clone().into();
        flag.store(true, Ordering::SeqCst);
        assert!(token.is_cancelled(), "the flag taken from a token is the token's");
        assert!(Arc::ptr_eq(&token.flag(), &flag));
    }
}
