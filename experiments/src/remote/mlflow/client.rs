//! A thin blocking client of MLflow's REST API (the few endpoints CLIP Lab needs), with the artifact proxy
//! (`mlflow-artifacts`). Authenticates as MLflow's own clients do: `MLFLOW_TRACKING_TOKEN` (bearer), else
//! `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD` (basic).
//!
//! Every failure is an [`Error::Remote`]: one line naming the URL and MLflow's error code.

use std::time::Duration;

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Value};

use crate::{Error, Result};

/// REST endpoints live under this path of the tracking URI.
const API: &str = "api/2.0/mlflow";
/// The artifact proxy's path (`mlflow server` serves it unless `--no-serve-artifacts`).
const ARTIFACTS_API: &str = "api/2.0/mlflow-artifacts/artifacts";
/// How long one request may take (an artifact upload of a checkpoint file included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// The largest artifact read back (a pulled run's JSON records).
const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// Characters escaped in one URL path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// How to authenticate to a tracking server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Token(String),
    /// HTTP basic auth.
    Basic { username: String, password: String },
}

impl Auth {
    /// From MLflow's environment variables: `MLFLOW_TRACKING_TOKEN`, else `MLFLOW_TRACKING_USERNAME` and
    /// `MLFLOW_TRACKING_PASSWORD`.
    pub fn from_env() -> Auth {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(t) = var("MLFLOW_TRACKING_TOKEN") {
            return Auth::Token(t);
        }
        match (var("MLFLOW_TRACKING_USERNAME"), var("MLFLOW_TRACKING_PASSWORD")) {
            (Some(username), password) => Auth::Basic { username, password: password.unwrap_or_default() },
            _ => Auth::None,
        }
    }

    fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Token(t) => Some(format!("Bearer {t}")),
            Auth::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
        }
    }
}

/// The tracking URI to use: the one given, else `MLFLOW_TRACKING_URI`.
pub fn tracking_uri(given: Option<&str>) -> Result<String> {
    given
        .map(str::to_string)
        .or_else(|| std::env::var("MLFLOW_TRACKING_URI").ok())
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::Invalid("no tracking server: pass --tracking-uri or set MLFLOW_TRACKING_URI".into()))
}

/// A connection to one MLflow tracking server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    auth: Option<String>,
}

impl Client {
    /// A client of the server at `tracking_uri` (`http://host:port` or `https://...`; a trailing `/` is ignored).
    pub fn new(tracking_uri: &str, auth: Auth) -> Result<Client> {
        let base = tracking_uri.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "tracking URI `{base}`: CLIP Lab talks to MLflow tracking servers over http:// or https://"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Ok(Client { base, agent, auth: auth.header() })
    }

    /// The tracking URI (without a trailing `/`).
    pub fn tracking_uri(&self) -> &str {
        &self.base
    }

    /// `GET /api/2.0/mlflow/<endpoint>?<query>`.
    pub fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<Value> {
        let url = format!("{}/{API}/{endpoint}", self.base);
        let mut req = self.agent.get(&url);
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        read_json(&url, req.call())
    }

    /// `POST /api/2.0/mlflow/<endpoint>` with a JSON body.
    pub fn post(&self, endpoint: &str, body: &Value) -> Result<Value> {
        let url = format!("{}/{API}/{endpoint}", self.base);
        let mut req = self.agent.post(&url);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        read_json(&url, req.send_json(body))
    }

    /// The URL of an artifact through the proxy; `root` is a run's artifact root without its scheme
    /// (`<experiment id>/<run id>/artifacts`), `path` a `/`-separated relative path.
    fn artifact_url(&self, root: &str, path: &str) -> String {
        let segs: Vec<String> = root
            .split('/')
            .chain(path.split('/'))
            .filter(|s| !s.is_empty())
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        format!("{}/{ARTIFACTS_API}/{}", self.base, segs.join("/"))
    }

    /// Uploads one artifact file through the proxy (replacing one at the same path).
    pub fn put_artifact(&self, root: &str, path: &str, bytes: &[u8]) -> Result<()> {
        let url = self.artifact_url(root, path);
        let mut req = self.agent.put(&url).header("Content-Type", "application/octet-stream");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        read_json(&url, req.send(bytes)).map(drop)
    }

    /// Downloads one artifact file through the proxy.
    pub fn get_artifact(&self, root: &str, path: &str) -> Result<Vec<u8>> {
        let url = self.artifact_url(root, path);
        let mut req = self.agent.get(&url);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().map_err(|e| unreachable_err(&url, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ARTIFACT_BYTES)
            .read_to_vec()
            .map_err(|e| remote(&url, Some(status), None, format!("reading the answer: {e}")))?;
        if status >= 400 {
            return Err(api_error(&url, status, &body));
        }
        Ok(body)
    }
}

/// Reads a JSON answer, turning HTTP errors into [`Error::Remote`] with MLflow's error code.
fn read_json(url: &str, sent: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value> {
    let mut resp = sent.map_err(|e| unreachable_err(url, e))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .map_err(|e| remote(url, Some(status), None, format!("reading the answer: {e}")))?;
    if status >= 400 {
        return Err(api_error(url, status, &body));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&body)
        .map_err(|e| remote(url, Some(status), None, format!("the answer is not MLflow's JSON: {e}")))
}

fn remote(url: &str, status: Option<u16>, code: Option<String>, message: String) -> Error {
    Error::Remote { url: url.to_string(), status, code, message }
}

fn unreachable_err(url: &str, e: ureq::Error) -> Error {
    remote(url, None, None, format!("cannot reach the tracking server: {e}"))
}

/// An HTTP error answer: MLflow's `{"error_code": ..., "message": ...}` when it sent one.
fn api_error(url: &str, status: u16, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(|v| v["error_code"].as_str()).map(str::to_string);
    let text = parsed.as_ref().and_then(|v| v["message"].as_str()).map(str::to_string).unwrap_or_else(|| {
        let s = String::from_utf8_lossy(body);
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        s.chars().take(200).collect()
    });
    let hint = match status {
        401 => " (check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD)",
        403 => " (the credentials lack permission)",
        _ => "",
    };
    let head = match &code {
        Some(c) => format!("MLflow error {c} (HTTP {status})"),
        None => format!("HTTP {status}"),
    };
    let message = if text.is_empty() { format!("{head}{hint}") } else { format!("{head}{hint}: {text}") };
    remote(url, Some(status), code, message)
}

/// Whether `e` is MLflow saying the thing asked for does not exist.
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Remote { code: Some(c), .. } if c == "RESOURCE_DOES_NOT_EXIST")
        || matches!(e, Error::Remote { status: Some(404), .. })
}
