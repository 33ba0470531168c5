//! What each run measured about itself, as MLflow and W&B log system metrics: scoring and training speed, peak
//! memory, and the machine it ran on (CPU model, threads, matrix-product library, GPU, version). One row per run,
//! replaced whole when the run records it again.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{check_exists, Ctx, Store};
use crate::model::device::Machine;
use crate::Result;

/// A run's system metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RunSystem {
    pub machine: Machine,
    /// Images per second while scoring (before training).
    pub score_images_per_s: Option<f64>,
    /// Mean wall time of one optimizer step (seconds).
    pub train_step_s: Option<f64>,
    /// Training images per second over the fine-tuning phase (held-out evaluation included).
    pub train_images_per_s: Option<f64>,
    /// Peak resident memory of the process (MiB).
    pub peak_rss_mib: Option<f64>,
    /// GPU memory in use (MiB), where the run used a GPU.
    pub gpu_memory_mib: Option<f64>,
}

impl Store {
    /// Records (or replaces) run `run`'s system metrics.
    pub fn record_system(&mut self, run: i64, s: &RunSystem) -> Result<()> {
        check_exists(&self.conn, &self.path, "run", run)?;
        let machine = serde_json::to_string(&s.machine).ctx(&self.path, "encoding the machine")?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO run_system (run_id, machine, score_images_per_s, train_step_s,
                     train_images_per_s, peak_rss_mib, gpu_memory_mib) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![run, machine, s.score_images_per_s, s.train_step_s, s.train_images_per_s, s.peak_rss_mib, s.gpu_memory_mib],
            )
            .ctx(&self.path, format!("recording the system metrics of run {run}"))?;
        Ok(())
    }

    /// Run `run`'s system metrics, if it recorded them (runs from before they existed, and pulled runs, did not).
    pub fn run_system(&self, run: i64) -> Result<Option<RunSystem>> {
        let row = self
            .conn
            .query_row(
                "SELECT machine, score_images_per_s, train_step_s, train_images_per_s, peak_rss_mib, gpu_memory_mib
                 FROM run_system WHERE run_id = ?1",
                [run],
                |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()
            .ctx(&self.path, format!("reading the system metrics of run {run}"))?;
        let Some((machine, score, step, train, rss, gpu)) = row else { return Ok(None) };
        let machine = serde_json::from_str(&machine).ctx(&self.path, format!("the machine of run {run}"))?;
        Ok(Some(RunSystem {
            machine,
            score_images_per_s: score,
            train_step_s: step,
            train_images_per_s: train,
            peak_rss_mib: rss,
            gpu_memory_mib: gpu,
        }))
    }
}

impl RunSystem {
    /// One line of speed and memory: `step 0.031 s · training 243.3 images/s · scoring 848.6 images/s · peak 210 MiB`
    /// (`-` for what the run did not measure), as `cliplab runs show` and the monitor print it.
    pub fn speed_line(&self) -> String {
        let f = |v: Option<f64>, digits: usize, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.digits$} {unit}"));
        let mut line = format!(
            "step {} · training {} · scoring {} · peak {}",
            f(self.train_step_s, 3, "s"),
            f(self.train_images_per_s, 1, "images/s"),
            f(self.score_images_per_s, 1, "images/s"),
            f(self.peak_rss_mib, 0, "MiB")
        );
        if let Some(gpu) = self.gpu_memory_mib {
            line.push_str(&format!(" (GPU {gpu:.0} MiB)"));
        }
        line
    }

    /// The machine in one line: `Intel(R) Xeon(R) Processor, 2 threads, cpu, matrix products: OpenBLAS ..., CLIP Lab
    /// 0.1.0 (cuda)`.
    pub fn machine_line(&self) -> String {
        let m = &self.machine;
        let features = if m.features.is_empty() { String::new() } else { format!(" ({})", m.features.join(", ")) };
        let device = match &m.gpu {
            Some(gpu) => format!("{} ({gpu})", m.device),
            None => m.device.clone(),
        };
        format!("{}, {} threads, {device}, matrix products: {}, CLIP Lab {}{features}", m.cpu, m.threads, m.blas, m.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_say_what_was_measured_and_dash_the_rest() {
        let machine = Machine {
            cpu: "Xeon".into(),
            threads: 2,
            blas: "OpenBLAS 0.3.21".into(),
            device: "cpu".into(),
            version: "0.1.0".into(),
            features: vec![],
            gpu: None,
        };
        let s = RunSystem {
            machine,
            score_images_per_s: Some(848.63),
            train_step_s: Some(0.0314),
            train_images_per_s: None,
            peak_rss_mib: Some(210.4),
            gpu_memory_mib: None,
        };
        assert_eq!(s.speed_line(), "step 0.031 s · training - · scoring 848.6 images/s · peak 210 MiB");
        assert_eq!(s.machine_line(), "Xeon, 2 threads, cpu, matrix products: OpenBLAS 0.3.21, CLIP Lab 0.1.0");
        let gpu = RunSystem { gpu_memory_mib: Some(1024.0), ..s.clone() };
        assert!(gpu.speed_line().ends_with("peak 210 MiB (GPU 1024 MiB)"));
        let machine = Machine { features: vec!["cuda".into()], device: "cuda:0".into(), gpu: Some("NVIDIA H200".into()), ..s.machine.clone() };
        let cuda = RunSystem { machine, ..s };
        assert_eq!(cuda.machine_line(), "Xeon, 2 threads, cuda:0 (NVIDIA H200), matrix products: OpenBLAS 0.3.21, CLIP Lab 0.1.0 (cuda)");
        // A machine recorded before the GPU's name was kept reads back without one.
        let old = r#"{"cpu":"Xeon","threads":2,"blas":"OpenBLAS","device":"cpu","version":"0.1.0","features":[]}"#;
        assert_eq!(serde_json::from_str::<Machine>(old).map(|m| m.gpu).ok(), Some(None));
    }
}
