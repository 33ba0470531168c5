//! The MLflow objects CLIP Lab uses, over [`Client`]: experiments by name, runs (create, get, search, update),
//! metric histories, and `log-batch` split within MLflow's limits.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::client::{is_not_found, Client};
use crate::{Error, Result};

/// MLflow's limits on one `runs/log-batch` request.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_PER_BATCH: usize = 100;
pub const MAX_TAGS_PER_BATCH: usize = 100;
/// MLflow refuses request bodies over 1 MB; batches stay under this.
pub const LOG_BATCH_BYTES: usize = 900_000;

/// A run as `runs/get` and `runs/search` describe it (the parts CLIP Lab reads).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteRun {
    pub run_id: String,
    pub experiment_id: String,
    pub status: String,
    /// `mlflow-artifacts:/<experiment>/<run>/artifacts` on a server that proxies artifacts.
    pub artifact_uri: String,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl RemoteRun {
    fn from_json(v: &Value) -> RemoteRun {
        let pairs = |list: &Value| -> BTreeMap<String, String> {
            list.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| {
                            Some((p["key"].as_str()?.to_string(), p["value"].as_str().unwrap_or("").to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let info = &v["info"];
        let s = |x: &Value| x.as_str().unwrap_or("").to_string();
        RemoteRun {
            run_id: s(&info["run_id"]),
            experiment_id: s(&info["experiment_id"]),
            status: s(&info["status"]),
            artifact_uri: s(&info["artifact_uri"]),
            params: pairs(&v["data"]["params"]),
            tags: pairs(&v["data"]["tags"]),
        }
    }

    /// The artifact root as the proxy's path (`<experiment>/<run>/artifacts`); an error naming the server when it
    /// does not proxy artifacts.
    pub fn artifact_root(&self, client: &Client) -> Result<String> {
        self.artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .map(|rest| {
                // `mlflow-artifacts:/1/abc/artifacts` or `mlflow-artifacts://host:port/1/abc/artifacts`.
                let rest = rest.trim_start_matches('/');
                if self.artifact_uri.starts_with("mlflow-artifacts://") {
                    rest.split_once('/').map_or("", |(_, p)| p).to_string()
                } else {
                    rest.to_string()
                }
            })
            .filter(|r| !r.is_empty())
            .ok_or_else(|| Error::Remote {
                url: client.tracking_uri().to_string(),
                status: None,
                code: None,
                message: format!(
                    "run {} stores its artifacts at `{}`, which CLIP Lab cannot reach; start the server with its \
                     artifact proxy (`mlflow server --artifacts-destination ...`)",
                    self.run_id, self.artifact_uri
                ),
            })
    }
}

/// The id of experiment `name`, creating it when `create` and it does not exist; `None` when it does not exist
/// and `create` is false.
pub fn experiment_id(client: &Client, name: &str, create: bool) -> Result<Option<String>> {
    match client.get("experiments/get-by-name", &[("experiment_name", name)]) {
        Ok(v) => Ok(v["experiment"]["experiment_id"].as_str().map(str::to_string)),
        Err(e) if is_not_found(&e) && create => {
            let v = client.post("experiments/create", &json!({ "name": name }))?;
            Ok(v["experiment_id"].as_str().map(str::to_string))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `runs/get`; `None` when there is no such run (or it was deleted).
pub fn get_run(client: &Client, run_id: &str) -> Result<Option<RemoteRun>> {
    match client.get("runs/get", &[("run_id", run_id)]) {
        Ok(v) => {
            let run = RemoteRun::from_json(&v["run"]);
            let deleted = v["run"]["info"]["lifecycle_stage"].as_str() == Some("deleted");
            Ok((!deleted).then_some(run))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `runs/create` with its name, start time and first tags.
pub fn create_run(
    client: &Client,
    experiment_id: &str,
    name: &str,
    start_ms: i64,
    tags: &[(String, String)],
) -> Result<RemoteRun> {
    let tags: Vec<Value> = tags.iter().take(MAX_TAGS_PER_BATCH).map(|(k, v)| json!({"key": k, "value": v})).collect();
    let v = client.post(
        "runs/create",
        &json!({ "experiment_id": experiment_id, "run_name": name, "start_time": start_ms, "tags": tags }),
    )?;
    Ok(RemoteRun::from_json(&v["run"]))
}

/// Every active run of an experiment whose tags match `filter` (MLflow's search syntax; empty: all), page by page.
pub fn search_runs(client: &Client, experiment_id: &str, filter: &str) -> Result<Vec<RemoteRun>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({ "experiment_ids": [experiment_id], "filter": filter, "max_results": 1000,
                               "run_view_type": "ACTIVE_ONLY" });
        if let Some(t) = &token {
            body["page_token"] = json!(t);
        }
        let v = client.post("runs/search", &body)?;
        out.extend(v["runs"].as_array().into_iter().flatten().map(RemoteRun::from_json));
        token = v["next_page_token"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// A metric's whole history: step → its last logged value.
pub fn metric_history(client: &Client, run_id: &str, key: &str) -> Result<BTreeMap<i64, f64>> {
    let mut out = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = vec![("run_id", run_id), ("metric_key", key), ("max_results", "25000")];
        if let Some(t) = token.as_deref() {
            q.push(("page_token", t));
        }
        let v = client.get("metrics/get-history", &q)?;
        let mut points: Vec<(i64, i64, f64)> = v["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some((m["step"].as_i64().unwrap_or(0), m["timestamp"].as_i64().unwrap_or(0), m["value"].as_f64()?))
            })
            .collect();
        // The latest point of a step is its value (MLflow's own rule).
        points.sort_by_key(|&(step, ts, _)| (step, ts));
        out.extend(points.into_iter().map(|(step, _, value)| (step, value)));
        token = v["next_page_token"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// One metric point to log.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub key: String,
    pub value: f64,
    pub step: i64,
    pub timestamp_ms: i64,
}

/// Logs metrics, params and tags with as few `log-batch` requests as MLflow's limits allow; returns how many
/// requests it sent.
pub fn log_batch(
    client: &Client,
    run_id: &str,
    metrics: &[Point],
    params: &[(String, String)],
    tags: &[(String, String)],
) -> Result<usize> {
    let metric = |p: &Point| json!({"key": p.key, "value": p.value, "step": p.step, "timestamp": p.timestamp_ms});
    let pair = |(k, v): &(String, String)| json!({"key": k, "value": v});
    let mut items: Vec<(usize, Value)> = Vec::with_capacity(metrics.len() + params.len() + tags.len());
    items.extend(metrics.iter().map(|p| (0, metric(p))));
    items.extend(params.iter().map(|p| (1, pair(p))));
    items.extend(tags.iter().map(|p| (2, pair(p))));
    let limits = [MAX_METRICS_PER_BATCH, MAX_PARAMS_PER_BATCH, MAX_TAGS_PER_BATCH];
    let mut sent = 0;
    let mut batch: [Vec<Value>; 3] = Default::default();
    let mut bytes = 0;
    let flush = |batch: &mut [Vec<Value>; 3], bytes: &mut usize, sent: &mut usize| -> Result<()> {
        if batch.iter().all(Vec::is_empty) {
            return Ok(());
        }
        let [m, p, t] = std::mem::take(batch);
        client.post("runs/log-batch", &json!({ "run_id": run_id, "metrics": m, "params": p, "tags": t }))?;
        *bytes = 0;
        *sent += 1;
        Ok(())
    };
    for (kind, item) in items {
        let size = item.to_string().len() + 1;
        if batch[kind].len() >= limits[kind] || bytes + size > LOG_BATCH_BYTES {
            flush(&mut batch, &mut bytes, &mut sent)?;
        }
        bytes += size;
        batch[kind].push(item);
    }
    flush(&mut batch, &mut bytes, &mut sent)?;
    Ok(sent)
}

/// `runs/update`: the run's status (`RUNNING`, `FINISHED`, `FAILED`, `KILLED`) and end time.
pub fn update_run(client: &Client, run_id: &str, status: &str, end_ms: Option<i64>) -> Result<()> {
    let mut body = json!({ "run_id": run_id, "status": status });
    if let Some(t) = end_ms {
        body["end_time"] = json!(t);
    }
    client.post("runs/update", &body).map(drop)
}
