//! Observers built from other observers, so that faces compose what they need instead of re-writing it:
//! a throttle for chatty progress, a closure as an observer, a tee, and cancellation from a [`CancelToken`].

use std::time::{Duration, Instant};

use super::{CancelToken, Event, Observer};

/// Passes at most one [`Event::Progress`] per interval (100 ms by default, ~10 a second), and always the last one
/// of a phase (`done == total`); every other event passes untouched. Progress comes once per batch, which is more
/// than a screen or an IPC channel wants.
pub struct Throttle<O> {
    inner: O,
    interval: Duration,
    last: Option<Instant>,
}

impl<O: Observer> Throttle<O> {
    /// The default interval between two progress events.
    pub const INTERVAL: Duration = Duration::from_millis(100);

    /// Throttles `inner` at [`Self::INTERVAL`].
    pub fn new(inner: O) -> Self {
        Self::with_interval(inner, Self::INTERVAL)
    }

    /// Throttles `inner` at `interval`.
    pub fn with_interval(inner: O, interval: Duration) -> Self {
        Self { inner, interval, last: None }
    }

    /// The wrapped observer.
    pub fn into_inner(self) -> O {
        self.inner
    }

    /// Whether `event`, arriving at `now`, passes; a passing progress event restarts the interval.
    fn admit(&mut self, event: &Event, now: Instant) -> bool {
        if let Event::Progress { done, total, .. } = event {
            if done < total && self.last.is_some_and(|t| now.duration_since(t) < self.interval) {
                return false;
            }
            self.last = Some(now);
        }
        true
    }
}

impl<O: Observer> Observer for Throttle<O> {
    fn on_event(&mut self, event: &Event) {
        if self.admit(event, Instant::now()) {
            self.inner.on_event(event);
        }
    }
    fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }
}

/// Forwards every event to a closure (an app's event channel, a test's counter). Never asks to cancel: wrap it in
/// [`WithCancel`] for that.
pub struct Callback<F>(F);

impl<F: FnMut(&Event)> Callback<F> {
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<F: FnMut(&Event)> Observer for Callback<F> {
    fn on_event(&mut self, event: &Event) {
        (self.0)(event);
    }
}

/// Sends every event to two observers, first `A` then `B`; cancelled when either is.
pub struct Tee<A, B>(pub A, pub B);

impl<A: Observer, B: Observer> Observer for Tee<A, B> {
    fn on_event(&mut self, event: &Event) {
        self.0.on_event(event);
        self.1.on_event(event);
    }
    fn cancelled(&self) -> bool {
        self.0.cancelled() || self.1.cancelled()
    }
}

/// An observer that also reports cancelled once `token` is cancelled (or when the inner observer says so).
pub struct WithCancel<O> {
    inner: O,
    token: CancelToken,
}

impl<O: Observer> WithCancel<O> {
    pub fn new(inner: O, token: CancelToken) -> Self {
        Self { inner, token }
    }
}

impl<O: Observer> Observer for WithCancel<O> {
    fn on_event(&mut self, event: &Event) {
        self.inner.on_event(event);
    }
    fn cancelled(&self) -> bool {
        self.token.is_cancelled() || self.inner.cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{NullObserver, Phase, Recorder};

    fn progress(done: usize, total: usize) -> Event {
        Event::Progress { phase: Phase::Train, done, total, elapsed_s: 0.0, eta_s: 0.0 }
    }

    #[test]
    fn throttle_passes_one_progress_per_interval_the_last_of_a_phase_and_every_other_event() {
        let mut t = Throttle::new(Recorder::default());
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let info = Event::Info { message: "x".into() };
        assert!(t.admit(&progress(1, 10), t0), "the first progress passes");
        assert!(!t.admit(&progress(2, 10), t0 + ms(50)), "a second within 100 ms is dropped");
        assert!(t.admit(&info, t0 + ms(60)), "other events always pass");
        assert!(t.admit(&progress(3, 10), t0 + ms(100)), "one interval later a progress passes again");
        assert!(t.admit(&progress(10, 10), t0 + ms(110)), "the last of a phase always passes");
        assert!(!t.admit(&progress(1, 5), t0 + ms(120)), "and restarts the interval");
    }

    #[test]
    fn throttle_forwards_what_it_admits() {
        let mut t = Throttle::with_interval(Recorder::default(), Duration::from_secs(3600));
        for done in 1..=5 {
            t.on_event(&progress(done, 5));
        }
        t.on_event(&Event::PhaseStarted { phase: Phase::Export, total: 1 });
        let events = t.into_inner().events;
        assert_eq!(events, vec![progress(1, 5), progress(5, 5), Event::PhaseStarted { phase: Phase::Export, total: 1 }]);
    }

    #[test]
    fn callback_sees_every_event_in_order() {
        let mut seen = Vec::new();
        {
            let mut cb = Callback::new(|e: &Event| seen.push(e.clone()));
            cb.on_event(&progress(1, 2));
            cb.on_event(&progress(2, 2));
            assert!(!cb.cancelled());
        }
        assert_eq!(seen, vec![progress(1, 2), progress(2, 2)]);
    }

    #[test]
    fn tee_feeds_both_and_is_cancelled_when_either_is() {
        let token = CancelToken::new();
        let mut tee = Tee(Recorder::default(), WithCancel::new(Recorder::default(), token.clone()));
        tee.on_event(&progress(1, 1));
        assert!(!tee.cancelled());
        token.cancel();
        assert!(tee.cancelled());
        assert_eq!(tee.0.events, vec![progress(1, 1)]);
        assert_eq!(tee.1.inner.events, vec![progress(1, 1)]);
    }

    #[test]
    fn with_cancel_follows_the_token_and_the_inner_observer() {
        struct Stop;
        impl Observer for Stop {
            fn on_event(&mut self, _: &Event) {}
            fn cancelled(&self) -> bool {
                true
            }
        }
        let token = CancelToken::new();
        let obs = WithCancel::new(NullObserver, token.clone());
        assert!(!obs.cancelled());
        token.cancel();
        assert!(obs.cancelled());
        assert!(WithCancel::new(Stop, CancelToken::new()).cancelled(), "the inner observer's wish counts too");
        // Adapters compose over borrowed observers as well.
        let mut rec = Recorder::default();
        Throttle::new(&mut rec).on_event(&progress(1, 1));
        assert_eq!(rec.events.len(), 1);
    }
}
