//! Writes every chart (SVG and PNG) of a few synthetic runs into a folder, to look at them.
//!
//! `cargo run -p experiments --example charts -- <folder>` writes, under `<folder>`:
//! `single/` (one run), `compare/` (three runs), `fifty/` (fifty runs: the legend wraps), `big/` (10,000
//! samples: the slope chart is capped, the per-step loss averaged), `empty/` (a run with nothing recorded), and
//! prints the summary and hyperparameter tables of the three runs.

use std::path::PathBuf;
use std::process::ExitCode;

use experiments::report::analysis::{hyperparameter_diff_table, RunData};
use experiments::report::plots::{render_comparison, render_run_charts, summary_table};

#[path = "../tests/support/runs.rs"]
mod runs;
use runs::{synth_run, three_runs};

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run -p experiments --example charts -- <folder>");
        return ExitCode::from(2);
    };
    match write_charts(&out) {
        Ok(n) => {
            println!("wrote {n} files under {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the chart sets; returns how many files were written.
fn write_charts(out: &std::path::Path) -> experiments::Result<usize> {
    let runs = three_runs();
    let many: Vec<RunData> = (0..50).map(|i| synth_run(i, 100, 300, 5)).collect();
    let big = synth_run(2, 10_000, 5_000, 10);
    let empty = RunData { id: 7, label: "run 7 · not scored yet".into(), ..Default::default() };
    let mut n = 0;
    n += render_run_charts(&runs[0], 0, &out.join("single"))?.len();
    n += render_comparison(&runs, &out.join("compare"))?.len();
    n += render_comparison(&many, &out.join("fifty"))?.len();
    n += render_run_charts(&big, 1, &out.join("big"))?.len();
    n += render_run_charts(&empty, 2, &out.join("empty"))?.len();
    println!("{}", summary_table(&runs));
    println!("{}", hyperparameter_diff_table(&runs));
    Ok(n)
}
