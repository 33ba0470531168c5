//! The queue in the app: runs put in the store's queue from the New experiment screen (one run, or a sweep over
//! the lists in the form), and the app's background worker that runs them with the same queue runner as
//! `cliplab queue run` ([`work_queue`]): one at a time, or on the CPU as many at once as the home's setting says
//! ([`App::set_queue_concurrency`]). The queue lives in the store, so runs still queued when the app closes are
//! taken up again when it opens. Also the sweep view and the loss series of the interactive charts.

use std::sync::Arc;

use experiments::events::{Callback, CancelToken, Event, Observer, Throttle, WithCancel};
use experiments::model::device::{self, DeviceChoice};
use experiments::report::analysis::RunData;
use experiments::report::labels::{labels_by_difference, LabelInput};
use experiments::report::plots;
use experiments::run::queue::{self, work_queue, WorkerOptions, Worked};
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::{EpochLoss, NewRun, QueuedRun, RunStatus, StepLoss, SweepInfo};
use experiments::run::{runner, sweep::{self, GridAxis}};

use super::{lock, App};
use crate::views::*;
use crate::{Error, Result};

impl App {
    /// Puts a run of `spec` in the queue, or with a `grid`, a sweep of one run per grid point; the worker starts
    /// if it is idle.
    pub fn queue_runs(self: &Arc<Self>, spec: &ExperimentSpec, grid: &[GridAxis]) -> Result<QueuedRuns> {
        let errs = self.check_spec(spec)?;
        if let Some(first) = errs.first() {
            let field = if first.field.is_empty() { String::new() } else { format!("{}: ", first.field) };
            return Err(Error::Invalid(format!("{field}{}", first.message)));
        }
        if let Some(a) = grid.iter().find(|a| a.key == "model" || a.key == "dataset") {
            return Err(Error::Invalid(format!("`{}` cannot take a list here: make one sweep per {}", a.key, a.key)));
        }
        let queued = {
            let mut store = self.store();
            if grid.is_empty() {
                let ds = runner::check_experiment(&store, spec)?;
                let run = store.enqueue_new_run(&NewRun { spec: spec.clone(), dataset_id: ds.id })?;
                QueuedRuns { sweep_id: None, run_ids: vec![run] }
            } else {
                let created = sweep::create_sweep(&mut store, spec, grid, true)?;
                QueuedRuns { sweep_id: Some(created.sweep_id), run_ids: created.run_ids }
            }
        };
        self.kick_queue();
        Ok(queued)
    }

    /// Starts the background worker unless it runs already. It works the queue until it is empty; a run
    /// cancelled from the window stops only that run (the worker goes on with the next).
    pub fn kick_queue(self: &Arc<Self>) {
        {
            let mut running = lock(&self.worker);
            if *running {
                return;
            }
            *running = true;
        }
        let app = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("queue".into()).spawn(move || app.work());
        if let Err(e) = spawned {
            tracing::error!("could not start the queue worker: {e}");
            *lock(&self.worker) = false;
        }
    }

    /// Whether the background worker is working the queue.
    pub fn queue_worker_running(&self) -> bool {
        *lock(&self.worker)
    }

    /// How the worker runs the queue: the runs at once the settings hold for the CPU, one at a time when this
    /// machine has a GPU (runs choose their device; two on one GPU would share its memory).
    pub fn worker_options(&self) -> Result<WorkerOptions> {
        let gpu = device::select(DeviceChoice::Cuda).is_ok() || device::select(DeviceChoice::Metal).is_ok();
        let concurrency = if gpu { 1 } else { queue::cpu_concurrency(&self.store())? };
        Ok(WorkerOptions { concurrency, device: None })
    }

    /// The queue's settings.
    pub fn queue_settings(&self) -> Result<QueueSettings> {
        let cpu_concurrency = queue::cpu_concurrency(&self.store())?;
        Ok(QueueSettings { cpu_concurrency, max_concurrency: queue::MAX_CONCURRENCY })
    }

    /// Sets the runs at once on the CPU (checked: 1 to [`queue::MAX_CONCURRENCY`]); the worker takes it up when
    /// it next starts on the queue.
    pub fn set_queue_concurrency(&self, concurrency: usize) -> Result<QueueSettings> {
        queue::set_cpu_concurrency(&mut self.store(), concurrency)?;
        self.queue_settings()
    }

    fn work(&self) {
        loop {
            let options = match self.worker_options() {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!("the queue worker cannot start: {e}");
                    *lock(&self.worker) = false;
                    return;
                }
            };
            // Stops the worker; never set by the window, which cancels single runs through their own tokens.
            let cancel = CancelToken::new();
            let sink = Arc::clone(&self.sink);
            let observer = |run_id: i64| -> Box<dyn Observer> {
                // Its own token: with several runs at once, cancelling one leaves the others running.
                let token = CancelToken::new();
                lock(&self.active).insert(run_id, token.clone());
                let sink = Arc::clone(&sink);
                let events = Throttle::new(Callback::new(move |e: &Event| sink.emit(AppEvent::Run { run_id, event: e.clone() })));
                Box::new(WithCancel::new(events, token))
            };
            let done = |w: &Worked| {
                lock(&self.active).remove(&w.run_id);
                let (status, error) = match self.store().run(w.run_id) {
                    Ok(d) => (d.info.status, d.info.error),
                    Err(e) => (RunStatus::Failed, Some(e.to_string())),
                };
                self.sink.emit(AppEvent::RunFinished { run_id: w.run_id, status, error });
            };
            let worked = work_queue(&self.home, options, &observer, &done, cancel.clone());
            let mut running = lock(&self.worker);
            if let Err(e) = worked {
                tracing::error!("the queue worker stopped: {e}");
                *running = false;
                return;
            }
            // Decided under the flag's lock: a run queued after this sees the worker stopped and starts it again.
            let waiting = self.store().queue_len().unwrap_or(0);
            if waiting == 0 {
                *running = false;
                return;
            }
        }
    }

    /// The queued runs, next first.
    pub fn queue(&self) -> Result<Vec<QueuedRun>> {
        Ok(self.store().queue()?)
    }

    /// Takes a run out of the queue (it ends `cancelled`).
    pub fn cancel_queued(&self, run_id: i64) -> Result<()> {
        Ok(self.store().cancel_queued(run_id)?)
    }

    /// Moves a queued run to 1-based place `to`.
    pub fn move_queued(&self, run_id: i64, to: usize) -> Result<()> {
        Ok(self.store().move_queued(run_id, to)?)
    }

    pub fn sweeps(&self) -> Result<Vec<SweepInfo>> {
        Ok(self.store().sweeps()?)
    }

    /// A sweep's results: its metric per run against each swept key, and the runs' loss curves.
    pub fn sweep_view(&self, sweep_id: i64) -> Result<SweepView> {
        let data = {
            let store = self.store();
            experiments::report::sweep::load_sweep_data(&store, sweep_id)?
        };
        let infos = self.runs()?;
        let best_run = experiments::report::sweep::best_run(&data);
        let points = data
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| SweepPoint {
                run_id: r.run_id,
                values: r.values.clone(),
                metric: r.metric,
                status: infos.iter().find(|x| x.id == r.run_id).map_or(RunStatus::Queued, |x| x.status),
                colour: plots::palette_hex(i),
            })
            .collect();
        let ids: Vec<i64> = data.runs.iter().map(|r| r.run_id).collect();
        Ok(SweepView {
            id: sweep_id,
            name: data.name,
            axes: data.axes,
            metric_name: data.metric_name,
            points,
            best_run,
            series: self.series(&ids)?,
        })
    }

    /// The loss curves of `run_ids` (run `i` in colour `i`), labelled by what differs between them.
    pub(super) fn series(&self, run_ids: &[i64]) -> Result<Vec<RunSeries>> {
        let data: Vec<Arc<RunData>> = run_ids.iter().map(|&id| self.run_data(id)).collect::<Result<_>>()?;
        let labels = self.store().run_labels()?;
        let none = Vec::new();
        let tags: Vec<&Vec<String>> = run_ids.iter().map(|id| labels.get(id).map_or(&none, |l| &l.tags)).collect();
        let inputs: Vec<LabelInput<'_>> = data
            .iter()
            .zip(&tags)
            .map(|(d, t)| LabelInput { id: d.id, hyperparameters: &d.hyperparameters, tags: t.as_slice() })
            .collect();
        let names = labels_by_difference(&inputs);
        Ok(data
            .iter()
            .zip(names)
            .enumerate()
            .map(|(i, (d, name))| RunSeries {
                run_id: d.id,
                label: name.unwrap_or_else(|| d.label.clone()),
                colour: plots::palette_hex(i),
                steps: d.step_losses.iter().map(|&(step, epoch, loss)| StepLoss { step, epoch, loss }).collect(),
                epochs: d
                    .epoch_losses
                    .iter()
                    .map(|&(epoch, train_loss, heldout_loss)| EpochLoss { epoch, train_loss, heldout_loss })
                    .collect(),
            })
            .collect())
    }
}
