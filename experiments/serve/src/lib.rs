//! `cliplab serve`: CLIP Lab's app in a browser, for a GPU server reached over SSH. The HTTP transport of the app
//! layer (`cliplab_api`), beside the desktop app's Tauri IPC: the same [`App`], the same command list, the same
//! `ui/` (which picks its transport at start).
//!
//! - [`commands`]: every command of `with_commands!` as `POST /api/<name>` (JSON in, JSON out);
//! - [`events`]: `GET /api/events`, server-sent events to every tab (run and import progress, file prompts);
//! - [`picker`]: native dialogs become path fields, answered by `POST /api/pick/<id>` within allowed folders;
//! - [`auth`]: the token on every request, the security headers; [`assets`]: the embedded page;
//! - here: `GET /image/<id>?size=<px>` (thumbnails from the app's cache), the router, start and shutdown.

pub mod assets;
pub mod auth;
pub mod commands;
pub mod error;
pub mod events;
pub mod picker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cliplab_api::app::App;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

pub use error::{Error, Result};

use crate::commands::CallError;
use crate::picker::{Prompts, RequestPicker};

/// The header a page sends with each command: its tab's id, so file prompts go to that tab.
pub const TAB_HEADER: &str = "x-cliplab-tab";

/// How long shutting down waits for the runs this server started to stop and record their end.
pub const RUN_STOP_PATIENCE: Duration = Duration::from_secs(60);

/// What `cliplab serve` was asked for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The CLIP Lab home (the store): always an allowed folder.
    pub home: PathBuf,
    pub bind: SocketAddr,
    /// Further folders the page may name (datasets, models, export destinations).
    pub allow_dirs: Vec<PathBuf>,
    /// Serve on an address other than loopback.
    pub expose: bool,
}

/// What every request handler shares.
pub struct Shared {
    pub app: Arc<App>,
    pub token: auth::Token,
    pub prompts: Arc<Prompts>,
    pub events: events::Events,
    /// Set once to `true` when the server shuts down (ends the event streams).
    pub shutdown: watch::Sender<bool>,
}

/// The router over `shared`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/events", get(event_stream))
        .route("/api/pick/{id}", post(pick_answer))
        .route("/api/{command}", post(command))
        .route("/image/{id}", get(image))
        .fallback(assets::file)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&shared), auth::guard))
        .with_state(shared)
}

/// A JSON string body with a status: how a command's error reaches the page's `invoke` (it rejects with it).
fn error_reply(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(message.into())).into_response()
}

async fn command(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let args: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return error_reply(StatusCode::BAD_REQUEST, format!("{name}: the body is not JSON: {e}")),
        }
    };
    let tab = headers.get(TAB_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let app = Arc::clone(&shared.app);
    let prompts = Arc::clone(&shared.prompts);
    // On a blocking thread: commands read the store, decode images, wait for a file prompt. The task runs to its
    // end even if the tab goes away (a closed tab never cancels anything).
    let task = tokio::task::spawn_blocking(move || {
        let out = prompts.for_tab(tab, || commands::call(&app, &name, args));
        (name, out)
    });
    match task.await {
        Ok((_, Some(Ok(value)))) => Json(value).into_response(),
        Ok((_, Some(Err(e @ CallError::Args { .. })))) => error_reply(StatusCode::BAD_REQUEST, e.to_string()),
        Ok((_, Some(Err(e)))) => error_reply(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Ok((name, None)) => error_reply(StatusCode::NOT_FOUND, format!("no command `{name}`")),
        Err(e) => {
            tracing::error!("a command panicked: {e}");
            error_reply(StatusCode::INTERNAL_SERVER_ERROR, "the command failed unexpectedly (see the server's log)")
        }
    }
}

#[derive(Deserialize)]
struct TabQuery {
    tab: Option<String>,
}

async fn event_stream(State(shared): State<Arc<Shared>>, Query(q): Query<TabQuery>) -> impl IntoResponse {
    events::stream(&shared.events, shared.shutdown.subscribe(), q.tab)
}

/// `POST /api/pick/<id>` with `{"path": "/abs/path"}` or `{"path": null}` (cancelled).
#[derive(Deserialize)]
struct PickAnswer {
    path: Option<PathBuf>,
}

async fn pick_answer(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<u64>, Json(answer): Json<PickAnswer>) -> Response {
    let prompts = Arc::clone(&shared.prompts);
    // canonicalize touches the disk: off the async threads.
    let checked = tokio::task::spawn_blocking(move || prompts.answer(id, answer.path.as_deref())).await;
    match checked {
        Ok(Ok(path)) => Json(path).into_response(),
        Ok(Err(e @ Error::NoSuchPrompt(_))) => error_reply(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e)) => error_reply(StatusCode::FORBIDDEN, e.to_string()),
        Err(e) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct SizeQuery {
    size: Option<u32>,
}

/// `GET /image/<id>?size=<px>`: a JPEG thumbnail of a stored image, from the app's cache and thumbnail workers
/// (as the desktop app's `cliplab://` protocol).
async fn image(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<i64>, Query(q): Query<SizeQuery>) -> Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    shared.app.thumbnail_later(id, q.size.unwrap_or(256), move |made| {
        // The request may be gone (the tab scrolled away): nothing to tell.
        let _ = tx.send(made);
    });
    match rx.await {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "max-age=86400")], bytes).into_response(),
        Ok(Err(e)) => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the thumbnail workers are gone").into_response(),
    }
}

/// A server that is running (on its own threads).
pub struct Running {
    /// Where it listens (the port chosen when 0 was asked for).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The URL to open: the token in its query.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.shared.token.value())
    }

    pub fn token(&self) -> &str {
        self.shared.token.value()
    }

    pub fn app(&self) -> &Arc<App> {
        &self.shared.app
    }

    /// The folders a picked path may lie in (canonical).
    pub fn allowed_dirs(&self) -> &[PathBuf] {
        self.shared.prompts.roots()
    }

    /// Stops serving (event streams end, requests in flight finish, open prompts are cancelled), then stops the
    /// runs this server started and waits until they recorded their end (cancelled), at most
    /// [`RUN_STOP_PATIENCE`]. Runs of other processes are not touched: the store tells their owners apart.
    pub fn shutdown(self) {
        self.shared.shutdown.send_replace(true);
        self.shared.prompts.cancel_all();
        match self.runtime.block_on(self.server) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("the server stopped with an error: {e}"),
            Err(e) => tracing::error!("the server task failed: {e}"),
        }
        let app = &self.shared.app;
        for run_id in app.active_runs() {
            if let Err(e) = app.cancel_run(run_id) {
                tracing::warn!(run_id, "cannot cancel: {e}");
            }
        }
        let deadline = Instant::now() + RUN_STOP_PATIENCE;
        while !app.active_runs().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if !app.active_runs().is_empty() {
            tracing::warn!(runs = ?app.active_runs(), "runs still stopping: the next start marks them interrupted");
        }
        self.runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

/// Opens the store in `config.home` and starts serving on `config.bind` (threads of its own; returns at once).
pub fn start(config: Config) -> Result<Running> {
    if !config.bind.ip().is_loopback() && !config.expose {
        return Err(Error::NotLoopback(config.bind));
    }
    let listener =
        std::net::TcpListener::bind(config.bind).map_err(|source| Error::Bind { addr: config.bind, source })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind { addr: config.bind, source })?;
    listener.set_nonblocking(true).map_err(|source| Error::Bind { addr, source })?;

    let (events, _) = broadcast::channel(events::BACKLOG);
    let sink = Arc::new(events::BroadcastSink { events: events.clone() });
    std::fs::create_dir_all(&config.home).map_err(|source| Error::Home { path: config.home.clone(), source })?;
    let mut roots = vec![config.home.clone()];
    roots.extend(config.allow_dirs.iter().cloned());
    let prompts = Arc::new(Prompts::new(&roots, events.clone())?);
    let app = App::open(&config.home, Box::new(RequestPicker(Arc::clone(&prompts))), sink)?;
    let shared = Arc::new(Shared {
        app,
        token: auth::Token::new(auth::new_token(), addr.port()),
        prompts,
        events,
        shutdown: watch::Sender::new(false),
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("cliplab-serve")
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let router = router(Arc::clone(&shared));
    let mut stop = shared.shutdown.subscribe();
    let server = runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                // Ends when shutdown is set (or its sender is gone).
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
            .await
    });
    tracing::info!(%addr, home = %config.home.display(), "serving");
    Ok(Running { addr, shared, runtime, server })
}

/// What serving on `addr` exposes, for the start message.
pub fn exposure(addr: SocketAddr, allowed: &[PathBuf]) -> String {
    let dirs: Vec<String> = allowed.iter().map(|d| d.display().to_string()).collect();
    let reach = if addr.ip().is_loopback() {
        "this machine only (from elsewhere: ssh -L PORT:127.0.0.1:PORT host)".to_string()
    } else {
        format!(
            "ANYONE who can reach {addr} and has the token, over plain HTTP (not encrypted: the token and every \
             page can be read on the way; prefer loopback and an SSH tunnel)"
        )
    };
    format!(
        "reachable by {reach}; it can start and cancel runs, import and export, and read files under: {}",
        dirs.join(", ")
    )
}
