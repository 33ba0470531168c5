//! CLIP Lab's desktop app: the Tauri 2 transport of the app layer (`cliplab_api`, `experiments/app-api/`), which
//! holds the state, the commands' logic, the views and the one command list; `cliplab serve` is the other transport.
//!
//! - [`commands`]: the `#[tauri::command]`s expanded from `with_commands!`, one line each; `build.rs` declares the
//!   same list to Tauri's permission system;
//! - [`picker`]: native file and folder dialogs, the only way the app reaches a user's files;
//! - here: the window's event sink, the `cliplab://` protocol that serves image thumbnails to the page, start-up.

pub mod commands;
pub mod picker;

use std::sync::Arc;

use cliplab_api::app::{App, EventSink};
use cliplab_api::views::AppEvent;
use cliplab_api::picker::{Picker, ScriptedPicker};
use cliplab_api::{bindings, with_commands};
use tauri::{Emitter, Manager};

use crate::commands::Shared;

struct WindowSink<R: tauri::Runtime> {
    app: tauri::AppHandle<R>,
}

impl<R: tauri::Runtime> EventSink for WindowSink<R> {
    fn emit(&self, event: AppEvent) {
        // A closed window is not an error of the run.
        let _ = self.app.emit(bindings::EVENT_NAME, event);
    }
}

/// `cliplab://localhost/image/<image id>?size=<px>` → a JPEG thumbnail of an image in the store, made on the
/// app's thumbnail pool (a few worker threads, not one per request); `respond` gets the response there.
fn serve_image<R: tauri::Runtime>(
    app: &tauri::AppHandle<R>,
    uri: &tauri::http::Uri,
    respond: impl FnOnce(tauri::http::Response<Vec<u8>>) + Send + 'static,
) {
    use tauri::http::{header, Response, StatusCode};
    let reply = |status: StatusCode, ctype: &str, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, ctype)
            .header(header::CACHE_CONTROL, "max-age=86400")
            .body(body)
            .unwrap_or_default()
    };
    let id = uri.path().strip_prefix("/image/").and_then(|s| s.parse::<i64>().ok());
    let size = uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("size=")))
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(256);
    let Some(id) = id else {
        return respond(reply(StatusCode::NOT_FOUND, "text/plain", b"no such image".to_vec()));
    };
    match &app.state::<Shared>().0 {
        Ok(a) => a.thumbnail_later(id, size, move |made| {
            respond(match made {
                Ok(bytes) => reply(StatusCode::OK, "image/jpeg", bytes),
                Err(e) => reply(StatusCode::NOT_FOUND, "text/plain", e.to_string().into_bytes()),
            })
        }),
        Err(e) => respond(reply(StatusCode::NOT_FOUND, "text/plain", e.clone().into_bytes())),
    }
}

/// `generate_handler!` over every command of the list.
macro_rules! handler {
    ($( $(#[$doc:meta])* fn $name:ident($app:ident $(, $arg:ident: $ty:ty)*) -> $ret:ty $body:block )*) => {
        tauri::generate_handler![$(commands::$name),*]
    };
}

/// Starts the app. The store is `$CLIPLAB_HOME` or the platform's data folder; a store that cannot be opened
/// is reported in the window.
pub fn run() -> anyhow::Result<()> {
    let home = experiments::run::store::Store::default_home();
    // Logs go to `<home>/logs/cliplab-app.<date>.log` for as long as the app runs; without them the app still works.
    let _log = match experiments::logging::init_file(&home.join("logs"), "cliplab-app") {
        Ok(guard) => Some(guard),
        Err(e) => {
            eprintln!("cliplab-app: no log file: {e}");
            None
        }
    };
    tracing::info!(home = %home.display(), "starting");
    tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .register_asynchronous_uri_scheme_protocol("cliplab", |ctx, request, responder| {
            // Decoding and resizing take a while: serve_image keeps them off the main thread.
            serve_image(ctx.app_handle(), request.uri(), move |response| responder.respond(response));
        })
        .setup(move |app| {
            let handle = app.handle().clone();
            let picker: Box<dyn Picker> = match ScriptedPicker::from_env() {
                Some(p) => Box::new(p),
                None => Box::new(picker::NativePicker { app: handle.clone() }),
            };
            let sink = Arc::new(WindowSink { app: handle });
            let shared = App::open(&home, picker, sink).map_err(|e| format!("cannot open the CLIP Lab store in {}: {e}", home.display()));
            app.manage(Shared(shared));
            Ok(())
        })
        .invoke_handler(with_commands!(handler))
        .run(tauri::generate_context!())?;
    Ok(())
}
