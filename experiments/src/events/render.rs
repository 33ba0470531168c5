//! Shows events to a person: a progress bar per phase with its ETA on a terminal (`indicatif`), and plain one-line
//! messages without control characters elsewhere (a pipe, a file, CI logs). The CLI's progress output.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Event, Observer};

/// How a [`ProgressRenderer`] shows events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderMode {
    /// A bar per phase, redrawn in place on stderr, with notes printed above it.
    Bars,
    /// One plain line per note, phase start and epoch; no per-batch output.
    Lines,
    /// Nothing (machine-readable output such as `--json` owns the streams).
    Quiet,
}

impl RenderMode {
    /// Bars when both stderr and stdout are terminals, lines when either is not (a redirected stdout means someone
    /// keeps the output: redrawn bars would only garble it), quiet when `quiet`.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            RenderMode::Quiet
        } else if std::io::stderr().is_terminal() && std::io::stdout().is_terminal() {
            RenderMode::Bars
        } else {
            RenderMode::Lines
        }
    }
}

/// An [`Observer`] that shows progress; see the [module docs](self).
pub struct ProgressRenderer {
    mode: RenderMode,
    /// Where plain lines go (stderr unless a test gives a buffer); in bars mode, notes printed above the bar.
    out: Box<dyn Write>,
    bar: Option<ProgressBar>,
}

impl ProgressRenderer {
    /// A renderer writing to stderr, in the mode [`RenderMode::detect`] picks.
    pub fn stderr(quiet: bool) -> Self {
        Self::new(RenderMode::detect(quiet), Box::new(std::io::stderr()))
    }

    /// A renderer in `mode` whose plain lines go to `out` (bars always draw on stderr).
    pub fn new(mode: RenderMode, out: Box<dyn Write>) -> Self {
        Self { mode, out, bar: None }
    }

    pub fn mode(&self) -> RenderMode {
        self.mode
    }

    /// Writes one line, above the bar if one is drawn.
    fn line(&mut self, text: &str) {
        let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let out = &mut self.out;
        // Progress output is best effort: a closed or full stderr must not fail the job it reports on.
        let mut write = || {
            let _ = writeln!(out, "{text}");
        };
        match &self.bar {
            Some(bar) if !bar.is_finished() => bar.suspend(write),
            _ => write(),
        }
    }

    fn start_bar(&mut self, label: &str, total: usize) {
        self.finish_bar();
        let style = ProgressStyle::with_template("{prefix:<18} [{bar:30}] {pos}/{len}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>.");
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr()).with_style(style);
        bar.set_prefix(label.to_string());
        self.bar = Some(bar);
    }

    fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

impl Drop for ProgressRenderer {
    fn drop(&mut self) {
        self.finish_bar();
    }
}

impl Observer for ProgressRenderer {
    fn on_event(&mut self, event: &Event) {
        match (self.mode, event) {
            (RenderMode::Quiet, _) => {}
            (_, Event::Info { message }) => self.line(message),
            (RenderMode::Lines, Event::PhaseStarted { phase, total }) => {
                self.line(&format!("{} ({total} {})", phase.label(), phase.unit()));
            }
            (RenderMode::Bars, Event::PhaseStarted { phase, total }) => self.start_bar(phase.label(), *total),
            (RenderMode::Bars, Event::Progress { done, total, eta_s, .. }) => {
                if let Some(bar) = &self.bar {
                    bar.set_length(*total as u64);
                    bar.set_position(*done as u64);
                    bar.set_message(format!("eta {}", HumanDuration(Duration::from_secs_f64(eta_s.max(0.0)))));
                    if done >= total {
                        bar.finish();
                    }
                }
            }
            (_, Event::EpochEnded { epoch, train_loss, heldout_loss }) => {
                let held = heldout_loss.map(|l| format!(", held-out loss {l:.4}")).unwrap_or_default();
                self.line(&format!("epoch {epoch}: train loss {train_loss:.4}{held}"));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Phase;
    use std::sync::{Arc, Mutex};

    /// A `Write` whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default()
        }
    }

    fn run_events() -> Vec<Event> {
        let mut events = vec![
            Event::Info { message: "device: cpu".into() },
            Event::PhaseStarted { phase: Phase::ScoreBefore, total: 3 },
        ];
        for done in 1..=3 {
            events.push(Event::Progress { phase: Phase::ScoreBefore, done, total: 3, elapsed_s: done as f64, eta_s: 1.0 });
        }
        events.push(Event::PhaseStarted { phase: Phase::Train, total: 2 });
        events.push(Event::Step { epoch: 1, step: 1, loss: 1.5 });
        events.push(Event::EpochEnded { epoch: 1, train_loss: 1.5, heldout_loss: Some(1.25) });
        events.push(Event::EpochEnded { epoch: 2, train_loss: 1.0, heldout_loss: None });
        events.push(Event::Info { message: "two\nlines\r".into() });
        events
    }

    fn render(mode: RenderMode) -> String {
        let buf = Buffer::default();
        let mut r = ProgressRenderer::new(mode, Box::new(buf.clone()));
        for e in run_events() {
            r.on_event(&e);
        }
        drop(r);
        buf.text()
    }

    #[test]
    fn lines_mode_writes_one_plain_line_per_note_phase_and_epoch() {
        let text = render(RenderMode::Lines);
        assert_eq!(
            text,
            "device: cpu\n\
             scoring (before) (3 batches)\n\
             fine-tuning (2 batches)\n\
             epoch 1: train loss 1.5000, held-out loss 1.2500\n\
             epoch 2: train loss 1.0000\n\
             two lines \n"
        );
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "no control characters: {text:?}");
    }

    #[test]
    fn lines_mode_counts_loading_in_items_not_batches() {
        let buf = Buffer::default();
        let mut r = ProgressRenderer::new(RenderMode::Lines, Box::new(buf.clone()));
        r.on_event(&Event::PhaseStarted { phase: Phase::Load, total: 1_048_576 });
        drop(r);
        assert_eq!(buf.text(), "loading (1048576 items)\n");
    }

    #[test]
    fn quiet_mode_writes_nothing() {
        assert_eq!(render(RenderMode::Quiet), "");
    }

    #[test]
    fn bars_mode_keeps_notes_as_lines_and_no_batch_lines() {
        // The bars themselves draw on stderr (hidden when it is not a terminal, as under `cargo test`).
        let text = render(RenderMode::Bars);
        assert_eq!(
            text,
            "device: cpu\n\
             epoch 1: train loss 1.5000, held-out loss 1.2500\n\
             epoch 2: train loss 1.0000\n\
             two lines \n"
        );
    }

    #[test]
    fn detect_is_quiet_when_asked() {
        assert_eq!(RenderMode::detect(true), RenderMode::Quiet);
        assert_ne!(RenderMode::detect(false), RenderMode::Quiet);
    }
}
