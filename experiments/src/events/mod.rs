//! The one event type long jobs report through: the CLI prints it, the GUI shows it live, the store persists it.
//!
//! Beside the type and the [`Observer`] trait live the pieces every face composes instead of writing its own:
//! - [`adapters`]: [`Throttle`] (at most ~10 progress events a second), [`Callback`] (events to a closure),
//!   [`Tee`] (one stream to two observers), [`WithCancel`] (an observer that honours a [`CancelToken`]);
//! - [`cancel`]: [`CancelToken`], the one cancel handle (Ctrl-C in the CLI, the Cancel button in the app);
//! - [`render`]: [`ProgressRenderer`], progress bars on a terminal and plain lines elsewhere (the CLI's output).

pub mod adapters;
pub mod cancel;
pub mod render;

pub use adapters::{Callback, Tee, Throttle, WithCancel};
pub use cancel::CancelToken;
pub use render::ProgressRenderer;

use serde::{Deserialize, Serialize};

/// The phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Loading the model and preprocessing images.
    Load,
    /// Scoring before fine-tuning.
    ScoreBefore,
    /// Fine-tuning.
    Train,
    /// Scoring after fine-tuning.
    ScoreAfter,
    /// Writing the checkpoint.
    Export,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Load => "loading",
            Phase::ScoreBefore => "scoring (before)",
            Phase::Train => "fine-tuning",
            Phase::ScoreAfter => "scoring (after)",
            Phase::Export => "exporting",
        }
    }

    /// What a phase's `total` counts, as printed: loading counts items of whatever it loads (images, rows, files,
    /// bytes of a download), scoring and fine-tuning count batches, exporting its steps.
    pub fn unit(self) -> &'static str {
        match self {
            Phase::Load => "items",
            Phase::ScoreBefore | Phase::Train | Phase::ScoreAfter => "batches",
            Phase::Export => "steps",
        }
    }
}

/// A progress report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A phase starts; `total` is its number of units (batches or steps).
    PhaseStarted { phase: Phase, total: usize },
    /// `done` of `total` units of `phase` are finished; `eta_s` is the estimated time left in the phase.
    Progress { phase: Phase, done: usize, total: usize, elapsed_s: f64, eta_s: f64 },
    /// One optimizer step (`step` counts from 1 over the whole run).
    Step { epoch: usize, step: usize, loss: f64 },
    /// One epoch ended: mean training loss over its steps and, if there is a held-out split, its loss.
    EpochEnded { epoch: usize, train_loss: f64, heldout_loss: Option<f64> },
    /// A free-form note (device chosen, parameter counts, ...).
    Info { message: String },
}

/// Receives events; may ask the job to stop between steps.
pub trait Observer {
    fn on_event(&mut self, event: &Event);
    /// Polled between steps and batches; `true` makes the job stop with [`crate::Error::Cancelled`].
    fn cancelled(&self) -> bool {
        false
    }
}

impl<O: Observer + ?Sized> Observer for &mut O {
    fn on_event(&mut self, event: &Event) {
        (**self).on_event(event);
    }
    fn cancelled(&self) -> bool {
        (**self).cancelled()
    }
}

impl<O: Observer + ?Sized> Observer for Box<O> {
    fn on_event(&mut self, event: &Event) {
        (**self).on_event(event);
    }
    fn cancelled(&self) -> bool {
        (**self).cancelled()
    }
}

/// Discards every event.
#[derive(Debug, Default)]
pub struct NullObserver;

impl Observer for NullObserver {
    fn on_event(&mut self, _event: &Event) {}
}

/// Keeps every event (tests, and callers that want to look afterwards).
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: Vec<Event>,
}

impl Observer for Recorder {
    fn on_event(&mut self, event: &Event) {
        self.events.push(event.clone());
    }
}

/// Counts units of a phase and reports progress with an ETA.
pub(crate) struct PhaseClock {
    phase: Phase,
    total: usize,
    done: usize,
    start: std::time::Instant,
}

impl PhaseClock {
    pub(crate) fn start(phase: Phase, total: usize, obs: &mut dyn Observer) -> Self {
        obs.on_event(&Event::PhaseStarted { phase, total });
        Self { phase, total, done: 0, start: std::time::Instant::now() }
    }

    pub(crate) fn tick(&mut self, obs: &mut dyn Observer) {
        self.done += 1;
        let elapsed_s = self.start.elapsed().as_secs_f64();
        let eta_s = if self.done == 0 {
            0.0
        } else {
            elapsed_s / self.done as f64 * self.total.saturating_sub(self.done) as f64
        };
        obs.on_event(&Event::Progress { phase: self.phase, done: self.done, total: self.total, elapsed_s, eta_s });
    }
}
