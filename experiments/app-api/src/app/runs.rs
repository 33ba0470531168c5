//! Runs: starting one on a worker thread, cancelling it, and the run-detail screen (charts, sample cards).

use std::collections::HashMap;
use std::sync::Arc;

use experiments::report::analysis::{self, RunData, SampleResult};
use experiments::report::plots::{self, Chart};
use experiments::run::runner;
use experiments::run::store::{RunInfo, RunStatus, Store};
use experiments::vocab::Stage;

use experiments::events::{CancelToken, Callback, Event, Throttle};
use super::{lock, App, MAX_PAGE};
use crate::views::*;
use crate::{Error, Result};

impl App {
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        Ok(self.store().runs()?)
    }

    /// Creates a run of `experiment_id` and starts it on a worker thread; its events go to the window and the
    /// store. The run row exists (queued) when this returns.
    pub fn start_run(self: &Arc<Self>, experiment_id: i64) -> Result<RunInfo> {
        let run_id = {
            let mut store = self.store();
            store.experiment(experiment_id)?;
            store.create_run(experiment_id)?
        };
        let cancel = CancelToken::new();
        lock(&self.active).insert(run_id, cancel.clone());
        let app = Arc::clone(self);
        let spawned = std::thread::Builder::new().name(format!("run-{run_id}")).spawn(move || app.execute(run_id, cancel));
        if let Err(e) = spawned {
            lock(&self.active).remove(&run_id);
            let msg = format!("could not start a worker thread: {e}");
            self.store().finish_run(run_id, RunStatus::Failed, Some(&msg))?;
            return Err(Error::Invalid(msg));
        }
        Ok(self.store().run(run_id)?.info)
    }

    fn execute(&self, run_id: i64, cancel: CancelToken) {
        let work = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> experiments::Result<()> {
            let mut store = Store::open(&self.home)?;
            let sink = self.sink.as_ref();
            let mut obs = Throttle::new(Callback::new(|e: &Event| sink.emit(AppEvent::Run { run_id, event: e.clone() })));
            runner::execute_run(&mut store, &self.home, run_id, &mut obs, cancel).map(|_| ())
        }));
        let panic_message = match &work {
            Err(p) => Some(
                p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default(),
            ),
            Ok(_) => None,
        };
        let mut store = self.store();
        if let Some(m) = panic_message {
            // The runner did not get to record an end: record it here, so the run does not stay "running".
            if let Err(e) = store.finish_run(run_id, RunStatus::Failed, Some(&format!("internal error: {m}"))) {
                tracing::error!(run_id, "recording the end of a run that panicked: {e}");
            }
        } else if let Ok(Err(e)) = &work {
            // Failures before the runner could record them (the store would not open): keep the message.
            if store.run(run_id).map(|d| !d.info.status.is_finished()).unwrap_or(false) {
                if let Err(e2) = store.finish_run(run_id, RunStatus::Failed, Some(&e.to_string())) {
                    tracing::error!(run_id, "recording that the run failed ({e}): {e2}");
                }
            }
        }
        let (status, error) = match store.run(run_id) {
            Ok(d) => (d.info.status, d.info.error),
            Err(e) => (RunStatus::Failed, Some(e.to_string())),
        };
        drop(store);
        lock(&self.active).remove(&run_id);
        self.sink.emit(AppEvent::RunFinished { run_id, status, error });
    }

    /// Asks a running run to stop after its current step; it ends `cancelled`, keeping what it recorded.
    pub fn cancel_run(&self, run_id: i64) -> Result<()> {
        match lock(&self.active).get(&run_id) {
            Some(token) => {
                token.cancel();
                Ok(())
            }
            None => Err(Error::Invalid(format!("run {run_id} is not running in this window"))),
        }
    }

    /// Ids of the runs this process is running.
    pub fn active_runs(&self) -> Vec<i64> {
        let mut v: Vec<i64> = lock(&self.active).keys().copied().collect();
        v.sort_unstable();
        v
    }

    pub(super) fn run_data(&self, run_id: i64) -> Result<Arc<RunData>> {
        if let Some(d) = lock(&self.finished_runs).get(&run_id) {
            return Ok(d.clone());
        }
        let store = self.store();
        let data = Arc::new(experiments::report::compare::load_run_data(&store, run_id)?);
        // Only a finished run's data are final.
        if store.run(run_id)?.info.status.is_finished() {
            lock(&self.finished_runs).insert(run_id, data.clone());
        }
        Ok(data)
    }

    pub(super) fn image_ids(&self, dataset_id: i64) -> Result<HashMap<i64, i64>> {
        Ok(self.dataset_samples(dataset_id)?.iter().map(|s| (s.id, s.image_id)).collect())
    }

    /// The run-detail screen: the record, headline numbers and charts.
    pub fn run_view(&self, run_id: i64) -> Result<RunView> {
        let detail = self.store().run(run_id)?;
        let data = self.run_data(run_id)?;
        let has_scores = !data.samples.is_empty();
        let runs = [(0usize, data.as_ref())];
        let mut charts = Vec::new();
        let wanted: &[Chart] = if has_scores { &Chart::ALL } else { &[Chart::LossSteps, Chart::LossEpochs] };
        for &c in wanted {
            charts.push(ChartSvg { name: c.name().into(), title: c.title().into(), svg: plots::chart_svg(c, &runs)? });
        }
        let deltas = analysis::label_prob_deltas(&data);
        let mut slope: Vec<_> =
            analysis::slope_subset(&deltas, plots::SLOPE_CAP).into_iter().filter_map(|k| deltas.get(k).cloned()).collect();
        slope.sort_by_key(|d| d.sample_id);
        Ok(RunView {
            summary: has_scores.then(|| analysis::summarize(&data)),
            detail,
            charts,
            series: self.series(&[run_id])?,
            score_charts: if has_scores { vec![RunScoreCharts::of(&data)] } else { Vec::new() },
            slope,
            slope_total: deltas.len(),
            colour: plots::palette_hex(0),
            checkpoint_state: self.checkpoint_state(run_id)?,
        })
    }

    /// A page of a run's samples as cards, sorted and filtered.
    pub fn run_samples(&self, run_id: i64, q: &RunSampleQuery) -> Result<SampleCardPage> {
        let data = self.run_data(run_id)?;
        let dataset_id = self.store().run(run_id)?.info.dataset_id;
        let images = self.image_ids(dataset_id)?;
        let text = q.text.trim().to_lowercase();
        let mut picked: Vec<&SampleResult> = data
            .samples
            .iter()
            .filter(|s| q.split.is_none_or(|sp| s.split == sp))
            .filter(|s| !q.flipped_only || matches!((s.correct(Stage::Before), s.correct(Stage::After)), (Some(a), Some(b)) if a != b))
            .filter(|s| {
                text.is_empty() || s.filename.to_lowercase().contains(&text) || s.choices.iter().any(|c| c.to_lowercase().contains(&text))
            })
            .collect();
        let key = |s: &SampleResult| s.delta().unwrap_or(0.0);
        match q.sort {
            SampleSort::Gain => picked.sort_by(|a, b| key(b).total_cmp(&key(a))),
            SampleSort::Loss => picked.sort_by(|a, b| key(a).total_cmp(&key(b))),
            SampleSort::Hardest => picked.sort_by(|a, b| {
                let p = |s: &SampleResult| s.label_prob(Stage::After).or(s.label_prob(Stage::Before)).unwrap_or(1.0);
                p(a).total_cmp(&p(b))
            }),
            SampleSort::Order => {}
        }
        let total = picked.len();
        let limit = q.limit.clamp(1, MAX_PAGE);
        let items = picked
            .into_iter()
            .skip(q.offset)
            .take(limit)
            .map(|s| SampleCard {
                head: SampleHead::of(s, &images),
                before: s.before.clone(),
                after: s.after.clone(),
                delta: s.delta(),
            })
            .collect();
        Ok(SampleCardPage { total, offset: q.offset, items })
    }

}
