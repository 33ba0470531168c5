//! Helpers for the end-to-end tests: run the real `cliplab` binary and, when an expectation fails, print the
//! command, its stdout and stderr and the temporary directory it ran in.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the `cliplab` binary cargo built beside this test binary (`target/<profile>/cliplab`).
pub fn cliplab_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/cliplab
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join(format!("cliplab{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds the cliplab binary)",
        bin.display()
    );
    bin
}

/// A temporary working directory plus a way to run `cliplab` in it.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

/// What one run of the binary gave.
pub struct Run {
    pub cmd: String,
    pub output: Output,
    pub dir: PathBuf,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn report(&self) -> String {
        format!(
            "\n--- command: {}\n--- dir: {}\n--- status: {}\n--- stdout:\n{}\n--- stderr:\n{}\n",
            self.cmd,
            self.dir.display(),
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> String {
        assert!(self.output.status.success(), "expected success{}", self.report());
        self.stdout()
    }
    /// Asserts failure with a one-line error on stderr and returns that line.
    pub fn fails(&self) -> String {
        assert!(!self.output.status.success(), "expected failure{}", self.report());
        let err = self.stderr();
        // Progress lines may precede it; the error itself is one line, the last one.
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "expected one error line{}", self.report());
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
        assert!(last.starts_with("error: "), "the last line must be the error{}", self.report());
        last.to_string()
    }
    /// Parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}){}", self.report()))
    }
    /// Panics with the full report and a message.
    pub fn fail_with(&self, msg: &str) -> ! {
        panic!("{msg}{}", self.report())
    }
}

impl Dir {
    pub fn new() -> Self {
        Self { tmp: tempfile::tempdir().expect("tempdir") }
    }
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }
    /// `cliplab ARGS` in this directory with `CLIPLAB_HOME` inside it, to spawn with other pipes.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(cliplab_bin());
        cmd.args(args).current_dir(self.path()).env("CLIPLAB_HOME", self.path().join("home"));
        cmd
    }
    /// Runs `cliplab ARGS` in this directory with `CLIPLAB_HOME` inside it.
    pub fn cliplab(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run cliplab");
        Run { cmd: format!("cliplab {}", args.join(" ")), output, dir: self.path().to_path_buf() }
    }
}

impl Default for Dir {
    fn default() -> Self {
        Self::new()
    }
}
