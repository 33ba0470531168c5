//! The runner's and the importer's events, forwarded to the window's [`EventSink`] (progress throttled).

use std::time::{Duration, Instant};

use experiments::events::{Event, Observer};

use super::EventSink;
use crate::views::AppEvent;

/// Progress events are many (one per batch): pass at most ~10 a second, and always the last of a phase.
fn throttle(last: &mut Option<Instant>, event: &Event) -> bool {
    if let Event::Progress { done, total, .. } = event {
        let now = Instant::now();
        if done < total && last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) {
            return false;
        }
        *last = Some(now);
    }
    true
}

/// A run's events, as [`AppEvent::Run`].
pub(super) struct RunEvents<'a> {
    sink: &'a dyn EventSink,
    run_id: i64,
    last: Option<Instant>,
}

impl<'a> RunEvents<'a> {
    pub(super) fn new(sink: &'a dyn EventSink, run_id: i64) -> Self {
        RunEvents { sink, run_id, last: None }
    }
}

impl Observer for RunEvents<'_> {
    fn on_event(&mut self, event: &Event) {
        if throttle(&mut self.last, event) {
            self.sink.emit(AppEvent::Run { run_id: self.run_id, event: event.clone() });
        }
    }
}

/// An import's validation events, as [`AppEvent::Import`].
pub(super) struct ImportEvents<'a> {
    sink: &'a dyn EventSink,
    token: u64,
    last: Option<Instant>,
}

impl<'a> ImportEvents<'a> {
    pub(super) fn new(sink: &'a dyn EventSink, token: u64) -> Self {
        ImportEvents { sink, token, last: None }
    }
}

impl Observer for ImportEvents<'_> {
    fn on_event(&mut self, event: &Event) {
        if throttle(&mut self.last, event) {
            self.sink.emit(AppEvent::Import { token: self.token, event: event.clone() });
        }
    }
}
