//! The user's path the GUI end-to-end tests drive, shared by the desktop app (`gui.rs`, Tauri + WebKit) and the
//! browser (`serve_gui.rs`, `cliplab serve` + headless Chromium): import the demo dataset, browse it, create and
//! run experiments, watch one live and cancel it, compare, export a checkpoint, see an error, with what the page
//! shows checked against the store. Only the export's folder dialog differs: `pick_folder` answers it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use experiments::run::store::{RunStatus, Store};
use serde_json::json;

use crate::webdriver::{self, Session};

const SHORT: Duration = Duration::from_secs(60);
const LONG: Duration = Duration::from_secs(600);

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Creates (and runs) an experiment from the form: name, lr and epochs typed in; sizes small.
fn create_and_run(s: &Session, name: &str, lr: &str, epochs: &str, shot: Option<&str>) {
    s.wait_text("[data-testid=spec-name]", SHORT);
    s.type_into("[data-testid=spec-name] ", name).expect("name");
    s.type_into("[data-testid=spec-train]", "60").expect("train");
    s.type_into("[data-testid=spec-heldout]", "24").expect("heldout");
    s.type_into("[data-testid=spec-epochs]", epochs).expect("epochs");
    s.type_into("[data-testid=spec-batch]", "8").expect("batch");
    s.type_into("[data-testid=spec-lr]", lr).expect("lr");
    s.select("[data-testid=spec-device]", "cpu").expect("device");
    s.wait("the form to validate", SHORT, |s| Ok((s.text("[data-testid=form-status]")? == "Ready to run.").then_some(())));
    if let Some(shot) = shot {
        s.screenshot(shot);
    }
    s.click("[data-testid=create-and-run]").expect("create and run");
}

/// Waits for the run-detail screen of a new run and returns its id.
fn wait_run_page(s: &Session, not: &[i64]) -> i64 {
    s.wait("the run page", SHORT, |s| {
        let hash = s.js("return location.hash;", json!([]))?;
        let id = hash.as_str().and_then(|h| h.strip_prefix("#/runs/")).and_then(|x| x.parse::<i64>().ok());
        Ok(id.filter(|id| !not.contains(id)))
    })
}

/// The path through every screen; `pick_folder(s, dir)` answers a folder dialog with `dir`.
pub fn user_path(s: &Session, home: &Path, export_dir: &Path, pick_folder: &dyn Fn(&Session, &Path)) {
    // ---- Datasets: the demo data, its validation report, then the import ---------------------------------------
    s.wait("the window", SHORT, |s| Ok(s.find("[data-testid=nav-datasets]").ok()));
    s.go("#/datasets").expect("go");
    s.wait_text("[data-testid=demo-data]", SHORT);
    s.type_into("[data-testid=demo-images]", "120").expect("demo size");
    s.click("[data-testid=demo-data]").expect("demo");
    s.wait_text("[data-testid=import-panel]", LONG);
    s.click("[data-testid=validate-import]").expect("validate");
    let valid = s.wait_text("[data-testid=report-valid]", LONG);
    assert_eq!(valid, "120");
    assert_eq!(s.text("[data-testid=report-problems]").expect("problems"), "0");
    s.screenshot("01-import-report");
    s.click("[data-testid=confirm-import]").expect("confirm");
    s.wait_text("[data-testid=import-done]", SHORT);
    let store = Store::open(home).expect("store");
    let datasets = store.datasets().expect("datasets");
    assert_eq!(datasets.len(), 1);
    let ds = &datasets[0];
    assert_eq!(ds.n_samples, 120);
    let shown = s.wait_text(&format!("[data-testid=dataset-row-{}] [data-testid=n-samples]", ds.id), SHORT);
    assert_eq!(shown, "120");

    // ---- Sample browser: cards as stored, paging, filtering ---------------------------------------------------
    s.click(&format!("[data-testid=dataset-row-{}] a", ds.id)).expect("open dataset");
    s.wait("48 sample cards", SHORT, |s| Ok((s.count("[data-testid=sample-card]")? == 48).then_some(())));
    assert_eq!(s.text("[data-testid=pager-text]").expect("pager"), "1–48 of 120");
    let samples = store.dataset_samples(ds.id).expect("samples");
    let right = s.text("[data-testid=sample-card] [data-testid=right-choice] .caption").expect("right choice");
    assert_eq!(right, samples[0].choices[samples[0].label]);
    s.wait("thumbnails to load", SHORT, |s| {
        let v = s.js("const i = document.querySelector('[data-testid=sample-card] img'); return i && i.complete && i.naturalWidth;", json!([]))?;
        Ok(v.as_u64().filter(|w| *w > 0))
    });
    s.screenshot("02-dataset-samples");
    s.select("[data-testid=label-filter]", "1").expect("filter B");
    let n_b = samples.iter().filter(|x| x.label == 1).count();
    s.wait("the answer-B filter", SHORT, |s| Ok(s.text("[data-testid=pager-text]")?.ends_with(&format!("of {n_b}")).then_some(())));

    // ---- New experiment: validation, then create and run; the live view; completion ---------------------------
    s.go("#/new").expect("go");
    s.wait_text("[data-testid=spec-heldout]", SHORT);
    s.type_into("[data-testid=spec-heldout]", "1000").expect("too many");
    // `clear` fires `input` on an empty field first ("a whole number, 0 or more"), so wait for the error about 1000.
    let err = s.wait("the held-out size error", SHORT, |s| {
        Ok(s.text("[data-testid=error-sample\\.heldout]").ok().filter(|t| t.contains("does not fit")))
    });
    assert!(err.contains("the dataset has 120 samples") && err.contains("1000 held-out"), "{err}");
    create_and_run(s, "gui lr 3e-3", "0.003", "12", Some("03-new-experiment"));
    let run_a = wait_run_page(s, &[]);
    s.wait("run A to complete", LONG, |s| Ok(s.find("[data-testid=run-summary]").ok()));
    let detail = store.run(run_a).expect("run A");
    assert_eq!(detail.info.status, RunStatus::Completed);
    let m = detail.info.metrics;
    let (hb, ha) = (m.heldout_before.expect("before"), m.heldout_after.expect("after"));
    let tile = s.text("[data-testid=heldout-acc]").expect("tile");
    assert_eq!(tile, format!("{} → {}", pct(hb.accuracy), pct(ha.accuracy)));
    let tile = s.text("[data-testid=heldout-prob]").expect("tile");
    assert_eq!(tile, format!("{} → {}", pct(hb.mean_label_prob), pct(ha.mean_label_prob)));
    // The run measured itself (speed, memory, machine) and the page shows what the store holds.
    let sys = detail.system.as_ref().expect("run A recorded its system metrics");
    let step = s.text("[data-testid=run-system] [data-testid=system-step]").expect("step time");
    assert_eq!(step, format!("{:.3} s", sys.train_step_s.expect("a step time")));
    let peak = s.text("[data-testid=run-system] [data-testid=system-peak]").expect("peak memory");
    assert_eq!(peak, format!("{:.0} MiB", sys.peak_rss_mib.expect("a peak")));
    let machine = s.text("[data-testid=run-system] [data-testid=system-machine]").expect("machine");
    assert_eq!(machine, format!("{}, {} threads", sys.machine.cpu, sys.machine.threads));
    s.js("document.querySelector('[data-testid=run-system]').scrollIntoView({ block: 'center' });", json!([])).expect("scroll");
    s.screenshot("05e-run-system");
    s.js("window.scrollTo(0, 0);", json!([])).expect("scroll back");
    s.wait("the sample cards", SHORT, |s| Ok((s.count("[data-testid=score-card]")? == 24).then_some(())));
    assert_eq!(s.text("[data-testid=card-pager-text]").expect("pager"), "1–24 of 84");
    // The loss chart is drawn in the run's colour with one line of steps.
    let lines = s.count("[data-testid=chart-loss_steps] polyline").expect("polylines");
    assert!(lines >= 1, "the loss curve is drawn");
    s.screenshot("05-run-detail");
    score_charts_hover(s, &store, run_a);
    epoch_loss_hover(s, &store, &[run_a]);
    letters_hover(s, &store, &[run_a]);
    s.screenshot("05d-run-letters-hover");

    // ---- A second run from a clone of the first spec -----------------------------------------------------------
    s.click("[data-testid=clone-spec]").expect("clone");
    s.wait("the cloned spec", SHORT, |s| Ok(s.js("return document.querySelector('[data-testid=spec-name]')?.value;", json!([]))?.as_str().filter(|v| v.ends_with("(copy)")).map(str::to_string)));
    create_and_run(s, "gui lr 3e-4", "0.0003", "4", None);
    let run_b = wait_run_page(s, &[run_a]);
    s.wait("run B to complete", LONG, |s| Ok(s.find("[data-testid=run-summary]").ok()));

    // ---- A long run: the live view's loss curve grows; cancel keeps what it recorded --------------------------
    s.go("#/new").expect("go");
    create_and_run(s, "gui long", "0.001", "2000", None);
    let run_c = wait_run_page(s, &[run_a, run_b]);
    let points = |s: &Session| -> webdriver::WdResult<usize> {
        let v = s.js("const p = document.querySelector('[data-testid=live-loss] polyline'); return p ? p.getAttribute('points').trim().split(' ').length : 0;", json!([]))?;
        Ok(v.as_u64().unwrap_or(0) as usize)
    };
    let first = s.wait("the live loss curve", LONG, |s| Ok(Some(points(s)?).filter(|n| *n >= 3)));
    s.wait("the loss curve to grow", LONG, |s| Ok(Some(points(s)?).filter(|n| *n > first)));
    let phase = s.text("[data-testid=live-phase]").expect("phase");
    assert_eq!(phase, "train");
    assert!(s.text("[data-testid=live-progress]").expect("progress").contains("ETA"));
    s.screenshot("04-run-live");
    s.click("[data-testid=cancel-run]").expect("cancel");
    s.wait("the run to be cancelled", LONG, |s| Ok((s.text(".meta [data-testid=status]")? == "cancelled").then_some(())));
    let c = store.run(run_c).expect("run C");
    assert_eq!(c.info.status, RunStatus::Cancelled);
    assert!(!c.step_losses.is_empty() && c.step_losses.len() < 2000 * 8, "cancelled mid-way, steps kept");

    // ---- Runs table = store ------------------------------------------------------------------------------------
    s.go("#/runs").expect("go");
    s.wait("two completed rows", SHORT, |s| Ok((s.count("[data-testid=runs-table] tr[data-status=completed]")? == 2).then_some(())));
    s.wait("the cancelled row", SHORT, |s| Ok((s.count("[data-testid=runs-table] tr[data-status=cancelled]")? == 1).then_some(())));
    for run in store.runs().expect("runs").into_iter().filter(|r| r.status == RunStatus::Completed) {
        let acc = s.text(&format!("[data-testid=run-row-{}] [data-testid=cell-acc]", run.id)).expect("acc cell");
        let (b, a) = (run.metrics.heldout_before.expect("b"), run.metrics.heldout_after.expect("a"));
        assert_eq!(acc, format!("{} → {}", pct(b.accuracy), pct(a.accuracy)));
        assert_eq!(s.text(&format!("[data-testid=run-row-{}] [data-testid=status]", run.id)).expect("status"), "completed");
    }
    s.screenshot("06-runs");

    // ---- Compare the two runs ----------------------------------------------------------------------------------
    s.click(&format!("[data-testid=select-run-{run_a}]")).expect("select A");
    s.click(&format!("[data-testid=select-run-{run_b}]")).expect("select B");
    s.click("[data-testid=compare-selected]").expect("compare");
    s.wait_text("[data-testid=compare-metrics]", LONG);
    for id in [run_a, run_b] {
        let after = store.run(id).expect("run").info.metrics.heldout_after.expect("after").accuracy;
        let shown = s.text(&format!("[data-testid=metrics-row-{id}] [data-testid=heldout-acc-after]")).expect("cell");
        assert_eq!(shown, pct(after));
    }
    for id in [run_a, run_b] {
        let speed = store.run(id).expect("run").system.expect("system").train_images_per_s.expect("speed");
        let shown = s.text(&format!("[data-testid=system-row-{id}] [data-testid=system-train-speed]")).expect("cell");
        assert_eq!(shown, format!("{speed:.1} images/s"));
    }
    s.js("document.querySelector('[data-testid=compare-system]').scrollIntoView({ block: 'center' });", json!([])).expect("scroll");
    s.screenshot("07f-compare-system");
    s.js("window.scrollTo(0, 0);", json!([])).expect("scroll back");
    assert!(s.count("[data-testid=diff-train\\.lr]").expect("diff") == 1, "the lr differs");
    let colours = s
        .js("return [...document.querySelectorAll('[data-testid=chart-loss_steps] polyline')].map(p => p.getAttribute('stroke'));", json!([]))
        .expect("strokes");
    let colours: Vec<String> = colours.as_array().expect("array").iter().filter_map(|c| c.as_str().map(str::to_uppercase)).collect();
    for c in [experiments::report::plots::palette_hex(0), experiments::report::plots::palette_hex(1)] {
        assert!(colours.contains(&c), "the loss chart has a curve in {c}: {colours:?}");
    }
    before_after_hover(s, &store, run_a, run_b);
    epoch_loss_hover(s, &store, &[run_a, run_b]);
    s.screenshot("07c-compare-epoch-hover");
    // On a log scale the axis says so, and the hover still shows the stored losses.
    s.click("[data-testid=chart-loss_epochs] [data-testid=log-scale]").expect("log scale");
    s.wait("the epoch chart on a log scale", SHORT, |s| {
        let v = s.js("return [...document.querySelectorAll('[data-testid=chart-loss_epochs] svg text')].some((t) => t.textContent === 'loss (log)');", json!([]))?;
        Ok(v.as_bool().filter(|b| *b))
    });
    epoch_loss_hover(s, &store, &[run_a, run_b]);
    s.screenshot("07e-compare-epoch-log");
    s.click("[data-testid=chart-loss_epochs] [data-testid=log-scale]").expect("linear scale");
    letters_hover(s, &store, &[run_a, run_b]);
    s.screenshot("07d-compare-letters-hover");
    legend_toggles(s, "chart-loss_epochs", run_b, &format!("polyline[data-run=\"{run_b}\"]"));
    legend_toggles(s, "chart-letters", run_b, &format!("rect[data-run=\"{run_b}\"][data-stage=after]"));
    let flips = |k: &str| s.text(&format!("[data-testid=flips-{k}]")).expect("flips").replace(',', "").parse::<usize>().expect("number");
    assert_eq!(flips("rr") + flips("rw") + flips("wr") + flips("ww"), 84, "every sample of the two runs is counted");
    assert_eq!(s.count("[data-testid=flip-card]").expect("cards"), (flips("rw").min(24) + flips("wr").min(24)));
    s.screenshot("07-compare");

    // ---- Export run A's checkpoint where the dialog (or path field) says ------------------------------------------
    s.go(&format!("#/runs/{run_a}")).expect("go");
    s.wait_text("[data-testid=run-summary]", SHORT);
    s.click("[data-testid=export-checkpoint]").expect("export");
    pick_folder(s, export_dir);
    let path = s.wait_text("[data-testid=exported-path]", LONG);
    let out = export_dir.join(format!("cliplab-run-{run_a}"));
    assert_eq!(PathBuf::from(&path), out);
    for f in ["model.safetensors", "config.json", "tokenizer.json", "preprocessor_config.json"] {
        assert!(out.join(f).is_file(), "{f} exported");
    }
    s.screenshot("08-export");

    // ---- A failure shows as a readable message, and the app goes on --------------------------------------------
    s.click("[data-testid=export-checkpoint]").expect("export again");
    pick_folder(s, export_dir);
    let msg = s.wait_text("[data-testid=error] .error-text", SHORT);
    assert!(msg.contains("already exists and is not empty"), "{msg}");
    s.screenshot("09-error");
    s.go("#/runs").expect("go");
    s.wait("the runs table after the error", SHORT, |s| Ok((s.count("[data-testid=runs-table] tr[data-status]")? == 3).then_some(())));

    daily_loop(s, home, run_a);
}

/// The compare page's before → after chart: hovering the held-out accuracy panel shows each run's stored
/// accuracy before and after; clicking run B's legend entry hides its bars, clicking again shows them.
fn before_after_hover(s: &Session, store: &Store, run_a: i64, run_b: i64) {
    let hover = "const svg = document.querySelector('[data-testid=chart-metrics] svg[data-panel=heldout-accuracy]'); if (!svg) return null; \
         if (arguments[1]) svg.scrollIntoView({block: 'center'}); \
         const r = svg.getBoundingClientRect(); \
         svg.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + r.width / 2, clientY: r.top + r.height / 2, bubbles: true})); \
         const row = document.querySelector(`[data-testid=chart-metrics] [data-testid=tip-run-${arguments[0]}][data-measure=accuracy][data-split=heldout]`); \
         return row ? [row.querySelector('[data-testid=tip-before]').textContent, row.querySelector('[data-testid=tip-after]').textContent] : null;";
    for id in [run_a, run_b] {
        let tip = s.wait("the before → after tooltip", SHORT, |s| {
            let v = s.js(hover, json!([id, true]))?;
            Ok(v.as_array().and_then(|a| Some((a.first()?.as_str()?.to_string(), a.get(1)?.as_str()?.to_string()))))
        });
        let m = store.run(id).expect("run").info.metrics;
        let stored = |x: Option<f64>| format!("{:.2}%", 100.0 * x.expect("held-out metrics"));
        let stored = (stored(m.heldout_before.map(|x| x.accuracy)), stored(m.heldout_after.map(|x| x.accuracy)));
        assert_eq!(tip, stored, "hover on run {id}'s held-out accuracy");
    }
    // Scrolling moved the page under the real pointer, whose own hover arrives later: once it has, hover the
    // held-out accuracy again for the screenshot.
    std::thread::sleep(std::time::Duration::from_millis(500));
    s.js(hover, json!([run_a, false])).expect("hover");
    s.screenshot("07b-compare-before-after");
    legend_toggles(s, "chart-metrics", run_b, &format!("rect[data-run=\"{run_b}\"]"));
    // The histogram and the calibration chart: an outline / a curve per run after; the legend hides run B's.
    for chart in ["chart-label_prob_hist", "chart-calibration"] {
        legend_toggles(s, chart, run_b, &format!("polyline[data-run=\"{run_b}\"][data-stage=after]"));
    }
}

/// Run `run` has marks (`marks`, a selector) in chart `chart`; clicking its legend entry hides them, clicking
/// again shows them.
fn legend_toggles(s: &Session, chart: &str, run: i64, marks: &str) {
    let count = |s: &Session| s.count(&format!("[data-testid={chart}] {marks}"));
    assert!(count(s).expect("marks") > 0, "run {run} is drawn in {chart}");
    let legend = format!("[data-testid={chart}] [data-testid=legend-{run}]");
    s.click(&legend).expect("hide the run");
    s.wait(&format!("run {run} hidden in {chart}"), SHORT, |s| Ok((count(s)? == 0).then_some(())));
    s.click(&legend).expect("show the run");
    s.wait(&format!("run {run} shown again in {chart}"), SHORT, |s| Ok((count(s)? > 0).then_some(())));
}

/// A chart's tooltip: its head line and its rows (see [`hover_chart`]).
type Tooltip = (String, Vec<Vec<Option<String>>>);

/// Hovers the centre of the last element matching `target` in the panel `panel` of the chart `chart` (scrolled
/// into view when `scroll`); returns the tooltip's head and its rows as `[testid, data-stage, data-sample, count, before, after,
/// accuracy, train, held-out]` (`null` where a row lacks one), or `None` while there is none.
fn hover_chart(s: &Session, chart: &str, panel: &str, target: &str, scroll: bool) -> webdriver::WdResult<Option<Tooltip>> {
    let v = s.js(
        "const [chart, panel, target, scroll] = arguments; \
         const svg = document.querySelector(`[data-testid=${chart}] svg[data-panel=${panel}]`); if (!svg) return null; \
         if (scroll) svg.scrollIntoView({block: 'center'}); \
         const el = [...svg.querySelectorAll(target)].pop(); if (!el) return null; \
         const b = el.getBoundingClientRect(); \
         svg.dispatchEvent(new MouseEvent('mousemove', {clientX: b.left + b.width / 2, clientY: b.top + b.height / 2, bubbles: true})); \
         const tip = document.querySelector(`[data-testid=${chart}] [data-testid=chart-tooltip]`); \
         if (!tip || tip.style.display !== 'block') return null; \
         const t = (r, id) => r.querySelector(`[data-testid=${id}]`)?.textContent ?? null; \
         const rows = [...tip.children].filter((r) => r.dataset.testid !== 'tip-panel').map((r) => \
           [r.dataset.testid, r.dataset.stage ?? null, r.dataset.sample ?? null, t(r, 'tip-count'), t(r, 'tip-before'), t(r, 'tip-after'), t(r, 'tip-accuracy'), t(r, 'tip-train'), t(r, 'tip-heldout')]); \
         return [tip.querySelector('[data-testid=tip-panel]').textContent, rows];",
        json!([chart, panel, target, scroll]),
    )?;
    let Some(a) = v.as_array() else { return Ok(None) };
    let head = a.first().and_then(|h| h.as_str()).unwrap_or_default().to_string();
    let rows = a
        .get(1)
        .and_then(|r| r.as_array())
        .map(|rows| rows.iter().map(|r| r.as_array().map(|c| c.iter().map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()).collect())
        .unwrap_or_default();
    Ok(Some((head, rows)))
}

/// The run page's score charts against the store's scores of `run`: hovering a sample's line in the per-sample
/// slope chart shows that sample's stored p(right caption) before and after; hovering the fullest bin of the
/// held-out histogram and of the held-out calibration chart shows the counts the stored scores give.
fn score_charts_hover(s: &Session, store: &Store, run: i64) {
    use experiments::vocab::{Split, Stage};
    let data = experiments::report::compare::load_run_data(store, run).expect("run data");
    let heldout: Vec<_> = data.samples.iter().filter(|x| x.split == Split::Heldout).collect();
    let both = heldout.iter().filter(|x| x.before.is_some() && x.after.is_some()).count();
    assert!(both > 0, "held-out samples scored before and after");
    // ---- Per-sample slope chart: a line per held-out sample; hover shows the sample's stored values -----------
    let lines = s.count("[data-testid=chart-label_prob_slope] svg[data-panel=heldout] line[data-sample]").expect("lines");
    assert_eq!(lines, both, "a line per held-out sample");
    let (head, rows) = s.wait("the slope chart's tooltip", SHORT, |s| {
        hover_chart(s, "chart-label_prob_slope", "heldout", "line[data-sample]", true)
    });
    let row = rows.first().expect("a sample row");
    let id: i64 = row[2].as_deref().and_then(|x| x.parse().ok()).expect("the row names its sample");
    let sample = heldout.iter().find(|x| x.sample_id == id).expect("a held-out sample of the run");
    let stored = |stage| sample.label_prob(stage).map(|p| format!("{p:.4}"));
    assert_eq!((row[4].clone(), row[5].clone()), (stored(Stage::Before), stored(Stage::After)), "hover on sample {id}");
    assert!(head.contains(&format!("sample #{id}")) && head.contains(&sample.filename), "{head}");
    s.screenshot("05b-run-slope-hover");

    // ---- Histogram of p(right caption), held-out: the fullest bin after fine-tuning -------------------------------
    let hist = |stage| {
        let mut counts = [0usize; 20];
        for p in heldout.iter().filter_map(|x| x.label_prob(stage)) {
            counts[((p.clamp(0.0, 1.0) * 20.0) as usize).min(19)] += 1;
        }
        counts
    };
    let (before, after) = (hist(Stage::Before), hist(Stage::After));
    let k = (0..20).max_by_key(|&k| (after[k], std::cmp::Reverse(k))).expect("bins");
    let (_, rows) = s.wait("the histogram's tooltip", SHORT, |s| {
        hover_chart(s, "chart-label_prob_hist", "heldout", &format!("rect[data-stage=after][data-bin=\"{k}\"]"), true)
    });
    let count = |stage: &str| rows.iter().find(|r| r[1].as_deref() == Some(stage)).and_then(|r| r[3].clone());
    assert_eq!(count("before"), Some(before[k].to_string()), "held-out samples before in p(right) bin {k}");
    assert_eq!(count("after"), Some(after[k].to_string()), "held-out samples after in p(right) bin {k}");

    // ---- Calibration, held-out: the fullest bin of top-choice confidence after fine-tuning ----------------------
    let cal = |stage| {
        let mut bins = [(0usize, 0usize); 10];
        for x in &heldout {
            let Some(probs) = x.probs(stage) else { continue };
            let top = x.top_choice(stage).expect("a top choice");
            let conf = f64::from(probs[top]).clamp(0.0, 1.0);
            let b = &mut bins[((conf * 10.0 + 1e-6) as usize).min(9)];
            b.0 += 1;
            b.1 += usize::from(top == x.label);
        }
        bins
    };
    let (before, after) = (cal(Stage::Before), cal(Stage::After));
    let k = (0..10).max_by_key(|&k| (after[k].0, std::cmp::Reverse(k))).expect("bins");
    let (_, rows) = s.wait("the calibration chart's tooltip", SHORT, |s| {
        hover_chart(s, "chart-calibration", "heldout", &format!("circle[data-stage=after][data-bin=\"{k}\"]"), true)
    });
    let row = |stage: &str| rows.iter().find(|r| r[1].as_deref() == Some(stage)).cloned().expect("a row per stage");
    assert_eq!(row("before")[3], Some(before[k].0.to_string()), "held-out samples before in confidence bin {k}");
    assert_eq!(row("after")[3], Some(after[k].0.to_string()), "held-out samples after in confidence bin {k}");
    let acc = format!("{:.2}%", 100.0 * after[k].1 as f64 / after[k].0 as f64);
    assert_eq!(row("after")[6], Some(acc), "accuracy in confidence bin {k}");
    s.screenshot("05c-run-calibration-hover");
}

/// The epoch-loss chart of `runs` (the page's runs, the first one's dots hovered): hovering an epoch every run
/// recorded shows each run's stored train and held-out loss at that epoch.
fn epoch_loss_hover(s: &Session, store: &Store, runs: &[i64]) {
    let epochs: Vec<_> = runs.iter().map(|&id| store.run(id).expect("run").epoch_losses).collect();
    let common: Vec<usize> = epochs[0].iter().map(|e| e.epoch).filter(|e| epochs.iter().all(|r| r.iter().any(|x| x.epoch == *e))).collect();
    assert!(common.len() >= 2, "the runs share epochs: {common:?}");
    let epoch = common[common.len() / 2];
    let target = format!("circle[data-run=\"{}\"][data-line=train][data-epoch=\"{epoch}\"]", runs[0]);
    let (head, rows) = s.wait("the epoch-loss tooltip", SHORT, |s| hover_chart(s, "chart-loss_epochs", "loss", &target, true));
    assert_eq!(head, format!("epoch {epoch}"));
    for (id, stored) in runs.iter().zip(&epochs) {
        let e = stored.iter().find(|x| x.epoch == epoch).expect("the epoch");
        let row = rows.iter().find(|r| r[0].as_deref() == Some(&format!("tip-run-{id}"))).unwrap_or_else(|| panic!("a row for run {id}: {rows:?}"));
        let held = e.heldout_loss.map(|x| format!("{x:.5}"));
        assert_eq!((row[7].clone(), row[8].clone()), (Some(format!("{:.5}", e.train_loss)), held), "run {id}'s losses at epoch {epoch}");
    }
}

/// The answer-letter chart of `runs`: hovering the held-out letter with the most samples of the first run shows,
/// per run, the accuracy before → after and the number of samples with that right letter that its stored scores
/// give.
fn letters_hover(s: &Session, store: &Store, runs: &[i64]) {
    use experiments::vocab::{Split, Stage};
    // Per run and letter: (samples, right before, scored before, right after, scored after).
    let counts = |id: i64| {
        let data = experiments::report::compare::load_run_data(store, id).expect("run data");
        let letters = data.samples.iter().map(|x| x.label + 1).max().unwrap_or(0).max(5);
        let mut c = vec![(0usize, 0usize, 0usize, 0usize, 0usize); letters];
        for x in data.samples.iter().filter(|x| x.split == Split::Heldout) {
            let l = &mut c[x.label];
            l.0 += 1;
            if let Some(top) = x.top_choice(Stage::Before) {
                (l.1, l.2) = (l.1 + usize::from(top == x.label), l.2 + 1);
            }
            if let Some(top) = x.top_choice(Stage::After) {
                (l.3, l.4) = (l.3 + usize::from(top == x.label), l.4 + 1);
            }
        }
        c
    };
    let counts: Vec<_> = runs.iter().map(|&id| counts(id)).collect();
    let k = (0..counts[0].len()).max_by_key(|&k| (counts[0][k].0, std::cmp::Reverse(k))).expect("letters");
    assert!(counts[0][k].0 > 0, "held-out samples scored");
    let target = format!("rect[data-run=\"{}\"][data-letter=\"{k}\"]", runs[0]);
    let (head, rows) = s.wait("the letters tooltip", SHORT, |s| hover_chart(s, "chart-letters", "heldout", &target, true));
    let letter = experiments::vocab::letter(k);
    assert!(head.contains(&format!("right caption at {letter}")), "{head}");
    let pct = |right: usize, n: usize| Some(format!("{:.2}%", 100.0 * right as f64 / n as f64));
    for (id, c) in runs.iter().zip(&counts) {
        let l = c[k];
        let row = rows.iter().find(|r| r[0].as_deref() == Some(&format!("tip-run-{id}"))).unwrap_or_else(|| panic!("a row for run {id}: {rows:?}"));
        let shown = (row[4].clone(), row[5].clone(), row[3].clone());
        assert_eq!(shown, (pct(l.1, l.2), pct(l.3, l.4), Some(l.0.to_string())), "run {id}'s held-out letter {letter}");
    }
}

/// The daily loop: a 2 x 2 sweep through the queue and its sweep view, a tag found again in the runs table, the
/// loss chart's hover against the store, and a failed run deleted with its folder.
fn daily_loop(s: &Session, home: &Path, run_a: i64) {
    let store = Store::open(home).expect("store");
    // ---- A 2 x 2 sweep from the form, run by the app's queue worker --------------------------------------------
    s.go("#/new").expect("go");
    s.wait_text("[data-testid=spec-name]", SHORT);
    s.type_into("[data-testid=spec-name]", "gui sweep").expect("name");
    s.type_into("[data-testid=spec-train]", "40").expect("train");
    s.type_into("[data-testid=spec-heldout]", "24").expect("heldout");
    s.type_into("[data-testid=spec-epochs]", "1, 2").expect("epochs");
    s.type_into("[data-testid=spec-batch]", "8").expect("batch");
    s.type_into("[data-testid=spec-lr]", "0.001, 0.003").expect("lr");
    s.select("[data-testid=spec-device]", "cpu").expect("device");
    s.wait("the form to count 4 runs", SHORT, |s| Ok((s.text("[data-testid=run-count]")? == "4 runs" && s.text("[data-testid=form-status]")? == "Ready to run.").then_some(())));
    s.screenshot("10-sweep-form");
    s.click("[data-testid=create-and-run]").expect("queue the sweep");
    let sweep_id = s.wait("the sweep page", SHORT, |s| {
        let hash = s.js("return location.hash;", json!([]))?;
        Ok(hash.as_str().and_then(|h| h.strip_prefix("#/sweeps/")).and_then(|x| x.parse::<i64>().ok()))
    });
    let sweep = store.sweep(sweep_id).expect("sweep");
    assert_eq!(sweep.run_ids.len(), 4, "2 x 2 grid");
    s.wait("four points in the sweep view", LONG, |s| Ok((s.count("[data-testid=sweep-axis-train\\.lr] circle")? == 4).then_some(())));
    for &id in &sweep.run_ids {
        assert_eq!(store.run(id).expect("run").info.status, RunStatus::Completed, "run {id} ran through the queue");
    }
    assert_eq!(store.queue_len().expect("queue"), 0);
    // The best point is the run with the best held-out accuracy (the first of equals).
    let accs: Vec<(i64, f64)> = sweep
        .run_ids
        .iter()
        .map(|&id| (id, store.run(id).expect("run").info.metrics.heldout_after.expect("after").accuracy))
        .collect();
    let best = accs.iter().fold(None, |b: Option<(i64, f64)>, &(id, a)| if b.is_none_or(|(_, m)| a > m) { Some((id, a)) } else { b });
    let shown_best = s.js("return document.querySelector('[data-testid=sweep-axis-train\\\\.lr] [data-testid=sweep-best]')?.getAttribute('data-run');", json!([])).expect("best");
    assert_eq!(shown_best.as_str().and_then(|v| v.parse::<i64>().ok()), best.map(|b| b.0));
    s.screenshot("11-sweep-view");

    // ---- Hover on the loss chart shows the stored loss at that step --------------------------------------------
    let run = sweep.run_ids[3];
    let tip = s.wait("the hover tooltip", SHORT, |s| {
        let v = s.js(
            "const svg = document.querySelector('[data-testid=chart-loss_steps] svg'); if (!svg) return null; \
             const r = svg.getBoundingClientRect(); \
             svg.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + r.width * 0.6, clientY: r.top + r.height / 2, bubbles: true})); \
             const row = document.querySelector(`[data-testid=tip-run-${arguments[0]}]`); \
             return row ? [row.getAttribute('data-step'), row.querySelector('[data-testid=tip-value]').textContent] : null;",
            json!([run]),
        )?;
        Ok(v.as_array().and_then(|a| Some((a.first()?.as_str()?.parse::<usize>().ok()?, a.get(1)?.as_str()?.to_string()))))
    });
    let stored = store.run(run).expect("run").step_losses.iter().find(|p| p.step == tip.0).map(|p| format!("{:.5}", p.loss));
    assert_eq!(Some(tip.1), stored, "hover at step {} of run {run}", tip.0);
    s.screenshot("12-hover");

    // ---- A tag on a run, found again by the runs table's filter ------------------------------------------------
    s.go(&format!("#/runs/{run}")).expect("go");
    s.wait_text("[data-testid=run-tag-input]", SHORT);
    s.type_into("[data-testid=run-tag-input]", "keeper").expect("tag");
    s.click("[data-testid=run-tag-add]").expect("add tag");
    s.wait("the tag chip", SHORT, |s| Ok((s.count("[data-testid=run-tag][data-tag=keeper]")? == 1).then_some(())));
    assert_eq!(store.run_labels().expect("labels")[&run].tags, vec!["keeper".to_string()]);
    s.go("#/runs").expect("go");
    s.wait_text("[data-testid=run-filter]", SHORT);
    s.select("[data-testid=group-by]", "").expect("no groups");
    s.type_into("[data-testid=run-filter]", "keeper").expect("filter");
    s.wait("only the tagged run", SHORT, |s| {
        Ok((s.count("[data-testid=runs-table] tr[data-status]")? == 1 && s.count(&format!("[data-testid=run-row-{run}]"))? == 1).then_some(()))
    });
    s.screenshot("13-tag-filter");

    // ---- A failed run (its model folder moved away) is deleted: records and folder --------------------------
    // The model is loaded after the run claimed its folder under <home>/runs, so the failed run has one on disk.
    let model = store.experiment(store.run(run_a).expect("run A").info.experiment_id).expect("experiment").spec.model;
    assert!(model.starts_with(home), "the demo model lives in the home: {}", model.display());
    let moved = model.with_extension("away");
    std::fs::rename(&model, &moved).expect("move the model away");
    s.go(&format!("#/runs/{run_a}")).expect("go");
    s.wait_text("[data-testid=run-summary]", SHORT);
    s.click("[data-testid=run-again]").expect("run again");
    let failed = wait_run_page(s, &[run_a]);
    s.wait("the run to fail", LONG, |s| Ok((s.text(".meta [data-testid=status]")? == "failed").then_some(())));
    std::fs::rename(&moved, &model).expect("model back");
    assert_eq!(store.run(failed).expect("failed run").info.status, RunStatus::Failed);
    let folder = store.run_folders().expect("folders").into_iter().find(|f| f.run_id == failed).and_then(|f| f.run_dir);
    let folder = folder.expect("the failed run claimed a run folder");
    assert!(folder.is_dir() && folder.starts_with(home.join("runs")), "{} on disk before the delete", folder.display());
    s.click("[data-testid=delete-run]").expect("delete");
    let says = s.wait_text("[data-testid=confirm-text]", SHORT);
    assert!(says.contains("1 run"), "{says}");
    s.screenshot("14-delete-confirm");
    s.click("[data-testid=confirm-ok]").expect("confirm");
    s.wait("the runs table after the delete", SHORT, |s| Ok(s.js("return location.hash;", json!([]))?.as_str().filter(|h| *h == "#/runs").map(|_| ())));
    // Records: the run, its scores, its folder record and its labels are gone from the store.
    assert!(store.run(failed).is_err(), "the failed run's records are gone");
    assert!(store.run_scores(failed).is_err(), "its scores are gone");
    assert!(store.runs().expect("runs").iter().all(|r| r.id != failed), "not listed");
    assert!(store.run_folders().expect("folders").iter().all(|f| f.run_id != failed), "its folder record is gone");
    assert!(!store.run_labels().expect("labels").contains_key(&failed), "its labels are gone");
    // Disk: its folder is gone, every other run's folder is still there.
    assert!(!folder.exists(), "{} is gone", folder.display());
    for f in store.run_folders().expect("folders") {
        if let Some(dir) = f.run_dir {
            assert!(dir.is_dir(), "run {}'s folder {} is left alone", f.run_id, dir.display());
        }
    }
    s.wait("the deleted run's row to go", SHORT, |s| Ok((s.count(&format!("[data-testid=run-row-{failed}]"))? == 0).then_some(())));
}
