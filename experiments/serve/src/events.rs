//! Events to every open tab: the app's [`AppEvent`]s (run progress, run ends, import progress) and the file
//! prompts of [`crate::picker`] go into one broadcast channel; each tab's `GET /api/events` is a server-sent event
//! stream over its own receiver. A tab that closes only drops its receiver: the run goes on.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use cliplab_api::app::EventSink;
use cliplab_api::bindings::EVENT_NAME;
use cliplab_api::views::AppEvent;
use futures_util::Stream;
use tokio::sync::{broadcast, watch};

/// How many events a slow tab may fall behind before it misses some (it is then told how many, and reloads).
pub const BACKLOG: usize = 4096;

/// The name of the server-sent event that asks a tab for a path ([`crate::picker`]).
pub const PICK_EVENT: &str = "pick";

/// The name of the server-sent event that tells a tab it missed events (`data`: how many).
pub const LAGGED_EVENT: &str = "lagged";

/// One server-sent event, for every tab or for one.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The SSE `event:` name: [`EVENT_NAME`] for app events, [`PICK_EVENT`] for prompts.
    pub event: &'static str,
    /// JSON.
    pub data: String,
    /// Only this tab (its id from the page), or every tab.
    pub tab: Option<String>,
}

/// The sender every tab's stream subscribes to.
pub type Events = broadcast::Sender<Arc<Outgoing>>;

/// The app's [`EventSink`]: every [`AppEvent`] to every tab.
pub struct BroadcastSink {
    pub events: Events,
}

impl EventSink for BroadcastSink {
    fn emit(&self, event: AppEvent) {
        let data = match serde_json::to_string(&event) {
            Ok(data) => data,
            Err(e) => {
                tracing::error!("an app event cannot be written as JSON: {e}");
                return;
            }
        };
        // No tab open is not an error: the run goes on and the store keeps its records.
        let _ = self.events.send(Arc::new(Outgoing { event: EVENT_NAME, data, tab: None }));
    }
}

/// `GET /api/events?tab=ID`: the events for tab `tab`, until it closes or the server shuts down.
pub fn stream(
    events: &Events,
    shutdown: watch::Receiver<bool>,
    tab: Option<String>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = events.subscribe();
    let stream = futures_util::stream::unfold((rx, shutdown, tab), |(mut rx, mut shutdown, tab)| async move {
        loop {
            if *shutdown.borrow() {
                return None;
            }
            let next = tokio::select! {
                _ = shutdown.changed() => return None,
                next = rx.recv() => next,
            };
            let event = match next {
                Ok(out) if out.tab.is_some() && out.tab != tab => continue,
                Ok(out) => SseEvent::default().event(out.event).data(&out.data),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a tab fell behind the event stream");
                    SseEvent::default().event(LAGGED_EVENT).data(missed.to_string())
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            return Some((Ok::<_, Infallible>(event), (rx, shutdown, tab)));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
