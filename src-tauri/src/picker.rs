//! The desktop app's [`Picker`]: native file and folder dialogs (tauri-plugin-dialog), the only way the app reaches
//! a user's files. (`cliplab_api::picker` holds the trait and the scripted picker the end-to-end tests use.)

use std::path::PathBuf;

use cliplab_api::picker::{Filter, Picker};

/// The native dialogs (tauri-plugin-dialog). Blocking: call it off the main thread (commands are async).
pub struct NativePicker<R: tauri::Runtime> {
    pub app: tauri::AppHandle<R>,
}

impl<R: tauri::Runtime> Picker for NativePicker<R> {
    fn pick_file(&self, title: &str, filters: &[Filter<'_>]) -> Option<PathBuf> {
        use tauri_plugin_dialog::DialogExt;
        let mut d = self.app.dialog().file().set_title(title);
        for (name, exts) in filters {
            d = d.add_filter(*name, exts);
        }
        d.blocking_pick_file().and_then(|p| p.into_path().ok())
    }

    fn pick_folder(&self, title: &str) -> Option<PathBuf> {
        use tauri_plugin_dialog::DialogExt;
        self.app.dialog().file().set_title(title).blocking_pick_folder().and_then(|p| p.into_path().ok())
    }
}
