//! Load on `cliplab serve`: N clients (default 50) each polling the runs list and following the event stream for
//! S seconds (default 30) while a run trains, against the same experiment's step time with one quiet listener.
//! Prints the figures: requests, errors, events each client got against the steps the store recorded, step times.
//! A measurement, not a test (timings never go into assertions):
//!
//! ```text
//! cargo run --release -p cliplab-serve --example load -- [CLIENTS] [SECONDS]
//! ```

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use cliplab_serve::{start, Config, Running};
use serde_json::{json, Value};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(600))).build().into()
}

fn call(r: &Running, name: &str, args: Value) -> Result<Value> {
    let mut resp = agent()
        .post(&format!("http://{}/api/{name}", r.addr))
        .header("Authorization", &format!("Bearer {}", r.token()))
        .send_json(&args)?;
    let status = resp.status().as_u16();
    let body: Value = resp.body_mut().read_json()?;
    if status != 200 {
        bail!("{name}: {status} {body}");
    }
    Ok(body)
}

/// Follows the event stream until run `run_id` finishes: the arrival time of each of its step events, and whether
/// the stream reported missed events.
fn follow(addr: String, token: String, run_id: Arc<AtomicUsize>, ready: mpsc::Sender<()>) -> Result<(Vec<Instant>, bool)> {
    let resp = agent().get(&format!("http://{addr}/api/events")).header("Authorization", &format!("Bearer {token}")).call()?;
    // A closed test harness is no error here.
    let _ = ready.send(());
    let mut steps = Vec::new();
    let mut lagged = false;
    let (mut event, mut data) = (String::new(), String::new());
    for line in BufReader::new(resp.into_body().into_reader()).lines() {
        let line = line?;
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            let v: Value = serde_json::from_str(&std::mem::take(&mut data)).unwrap_or(Value::Null);
            let want = run_id.load(Ordering::Relaxed) as i64;
            if event == "lagged" {
                lagged = true;
            } else if v["run_id"] == want && v["type"] == "run" && v["event"]["kind"] == "step" {
                steps.push(Instant::now());
            } else if v["run_id"] == want && v["type"] == "run_finished" {
                return Ok((steps, lagged));
            }
        }
    }
    Err(anyhow!("the event stream ended before the run finished"))
}

/// Mean time between step events.
fn step_time(steps: &[Instant]) -> Option<f64> {
    let (first, last) = (steps.first()?, steps.last()?);
    (steps.len() > 1).then(|| last.duration_since(*first).as_secs_f64() / (steps.len() - 1) as f64)
}

fn experiment(r: &Running, name: &str, epochs: usize) -> Result<i64> {
    let mut spec = call(r, "default_spec", json!({}))?;
    spec["name"] = json!(name);
    spec["sample"]["train"] = json!(1600);
    spec["sample"]["heldout"] = json!(200);
    spec["train"]["epochs"] = json!(epochs);
    spec["train"]["batch_size"] = json!(32);
    spec["device"] = json!("cpu");
    call(r, "create_experiment", json!({ "spec": spec }))?["id"].as_i64().context("experiment id")
}

/// What one observed run gave.
struct Measured {
    /// When each listener saw each step.
    times: Vec<Vec<Instant>>,
    /// Some listener's stream lagged (dropped events).
    lagged: bool,
    /// Runs-list requests the pollers made, and how many failed.
    requests: usize,
    errors: usize,
    /// Steps the store holds at the end.
    stored: i64,
}

/// Runs experiment `exp` with `listeners` clients following events (one of them times the steps) and as many
/// polling the runs list (when `polling`) until the run ends.
fn measured_run(r: &Running, exp: i64, listeners: usize, polling: bool) -> Result<Measured> {
    let run_id = Arc::new(AtomicUsize::new(usize::MAX));
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut followers = Vec::new();
    for _ in 0..listeners {
        let (addr, token, id, ready) = (r.addr.to_string(), r.token().to_string(), Arc::clone(&run_id), ready_tx.clone());
        followers.push(std::thread::spawn(move || follow(addr, token, id, ready)));
    }
    for _ in 0..listeners {
        ready_rx.recv_timeout(Duration::from_secs(30)).context("a listener did not connect")?;
    }
    let done = Arc::new(AtomicBool::new(false));
    let (requests, errors) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut pollers = Vec::new();
    if polling {
        for _ in 0..listeners {
            let (addr, token) = (r.addr.to_string(), r.token().to_string());
            let (done, requests, errors) = (Arc::clone(&done), Arc::clone(&requests), Arc::clone(&errors));
            pollers.push(std::thread::spawn(move || {
                let agent = agent();
                while !done.load(Ordering::Relaxed) {
                    let sent = agent
                        .post(&format!("http://{addr}/api/list_runs"))
                        .header("Authorization", &format!("Bearer {token}"))
                        .send_json(json!({}));
                    requests.fetch_add(1, Ordering::Relaxed);
                    let ok = sent.is_ok_and(|mut r| r.status().as_u16() == 200 && r.body_mut().read_to_vec().is_ok());
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }));
        }
    }
    let run = call(r, "start_run", json!({ "experimentId": exp }))?;
    let id = run["id"].as_i64().context("run id")?;
    run_id.store(id as usize, Ordering::Relaxed);
    let mut times = Vec::new();
    let mut lagged = false;
    for f in followers {
        let (steps, l) = f.join().map_err(|_| anyhow!("a listener panicked"))??;
        times.push(steps);
        lagged |= l;
    }
    done.store(true, Ordering::Relaxed);
    for p in pollers {
        p.join().map_err(|_| anyhow!("a poller panicked"))?;
    }
    let view = call(r, "run_view", json!({ "runId": id }))?;
    let stored = view["detail"]["step_losses"].as_array().map(Vec::len).unwrap_or(0) as i64;
    Ok(Measured { times, lagged, requests: requests.load(Ordering::Relaxed), errors: errors.load(Ordering::Relaxed), stored })
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(50);
    let seconds: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(30.0);
    let tmp = tempfile::tempdir()?;
    let r = start(Config { home: tmp.path().join("home"), bind: "127.0.0.1:0".parse()?, allow_dirs: vec![], expose: false })?;
    let draft = call(&r, "demo_import", json!({ "images": 2000 }))?;
    call(&r, "preview_import", json!({ "token": draft["token"], "name": draft["name"], "columns": draft["columns"] }))?;
    call(&r, "confirm_import", json!({ "token": draft["token"], "skipBadRows": false }))?;

    // Quiet: one listener, no polling.
    let quiet = experiment(&r, "quiet", 3)?;
    let Measured { times, .. } = measured_run(&r, quiet, 1, false)?;
    let quiet_step = step_time(&times[0]).context("no steps")?;
    let steps_per_epoch = times[0].len() as f64 / 3.0;
    let epochs = ((seconds * 1.2) / (steps_per_epoch * quiet_step)).ceil().max(1.0) as usize;
    println!("quiet run: {} steps, {:.1} ms per step; loaded run: {epochs} epochs (~{seconds} s)", times[0].len(), quiet_step * 1e3);

    let loaded = experiment(&r, "loaded", epochs)?;
    let started = Instant::now();
    let Measured { times, lagged, requests, errors, stored } = measured_run(&r, loaded, clients, true)?;
    let wall = started.elapsed().as_secs_f64();
    let counts: Vec<usize> = times.iter().map(Vec::len).collect();
    let all_complete = counts.iter().all(|&c| c as i64 == stored);
    let loaded_steps: Vec<f64> = times.iter().filter_map(|t| step_time(t)).collect();
    let loaded_step = loaded_steps.iter().sum::<f64>() / loaded_steps.len().max(1) as f64;
    println!("loaded run: {clients} clients following events + polling list_runs every 0.5 s, {wall:.1} s");
    println!("  requests {requests}, errors {errors}, missed-event notices: {lagged}");
    println!(
        "  step events per client: min {} max {} (store: {stored} steps): {}",
        counts.iter().min().unwrap_or(&0),
        counts.iter().max().unwrap_or(&0),
        if all_complete { "none lost" } else { "SOME LOST" }
    );
    println!(
        "  step time {:.1} ms vs quiet {:.1} ms: {:+.1}%",
        loaded_step * 1e3,
        quiet_step * 1e3,
        (loaded_step / quiet_step - 1.0) * 100.0
    );
    r.shutdown();
    Ok(())
}
