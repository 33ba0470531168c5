//! `cliplab-view --screenshot FILE`: draws the window as usual, then saves it as a PNG and closes it (how
//! `scripts/view-screenshot.sh` makes `docs/view.png` under Xvfb, with no screen-grabbing tool).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use eframe::egui::{self, ColorImage, ViewportCommand};

/// The result of saving the picture, shared with the callback that saves it.
pub type Outcome = Arc<Mutex<Option<Result<(), String>>>>;

/// A screenshot to take once the window has drawn for a while (the store read, the plots laid out).
pub struct Screenshot {
    path: PathBuf,
    /// Seconds of the window's clock before the picture is taken.
    after_s: f64,
    requested: bool,
    outcome: Outcome,
}

impl Screenshot {
    pub fn new(path: PathBuf, after_s: f64) -> Screenshot {
        Screenshot { path, after_s, requested: false, outcome: Arc::new(Mutex::new(None)) }
    }

    /// Called after each frame: asks for the picture once `after_s` has passed; saving it closes the window.
    pub fn frame(&mut self, ctx: &egui::Context) {
        if self.requested {
            return;
        }
        if ctx.input(|i| i.time) < self.after_s {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
            return;
        }
        self.requested = true;
        let (path, outcome, window) = (self.path.clone(), Arc::clone(&self.outcome), ctx.clone());
        ctx.request_screenshot(move |image| {
            let saved = save_png(&path, &image);
            if let Ok(mut slot) = outcome.lock() {
                *slot = Some(saved);
            }
            window.send_viewport_cmd(ViewportCommand::Close);
        });
    }

    /// Where the outcome lands: `Some` once the picture was saved (or failed to be). Kept by `main` while the
    /// window owns the screenshot.
    pub fn outcome(&self) -> Outcome {
        Arc::clone(&self.outcome)
    }
}

fn save_png(path: &Path, image: &ColorImage) -> Result<(), String> {
    let [w, h] = image.size;
    let (w, h) = (u32::try_from(w).map_err(|e| e.to_string())?, u32::try_from(h).map_err(|e| e.to_string())?);
    image::save_buffer(path, image.as_raw(), w, h, image::ExtendedColorType::Rgba8)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The window: the monitor, and the screenshot when one was asked for.
pub struct Window {
    pub monitor: crate::Monitor,
    pub screenshot: Option<Screenshot>,
}

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.monitor.ui(ui);
        if let Some(s) = &mut self.screenshot {
            s.frame(ui.ctx());
        }
    }
}
