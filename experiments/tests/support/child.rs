//! A child process that runs one ignored test of this same test binary, for the tests that kill a process which
//! owns a run: the child publishes the id of its run to `child-run` in the store's home, the parent waits for it,
//! and the child is killed (SIGKILL, no cleanup code runs) by the test or, when the test failed, on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that names the store's home to the child.
pub const CHILD_HOME: &str = "CLIPLAB_TEST_CHILD_HOME";

/// The child's side: the home its parent named; `None` when the test was run directly (it then does nothing).
pub fn child_home() -> Option<PathBuf> {
    std::env::var_os(CHILD_HOME).map(PathBuf::from)
}

/// The child's side: publishes `run` in `home` (written beside, then renamed: the parent never reads half an id).
pub fn publish_run(home: &Path, run: i64) {
    let tmp = home.join("child-run.tmp");
    std::fs::write(&tmp, run.to_string()).expect("write the run id");
    std::fs::rename(&tmp, home.join("child-run")).expect("publish the run id");
}

/// A running child process; killed on drop.
pub struct ChildTest(Child);

impl ChildTest {
    /// Runs the ignored test `test` of this binary on the store in `home` (with `env` set too) and waits, at most
    /// a minute, for the run id it publishes.
    pub fn spawn(test: &str, home: &Path, env: &[(&str, String)]) -> (ChildTest, i64) {
        let child = Command::new(std::env::current_exe().expect("exe"))
            .args(["--ignored", "--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD_HOME, home)
            .envs(env.iter().cloned())
            .stdout(Stdio::null())
            // Inherited: a failing child's panic shows in the test output.
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        let mut child = ChildTest(child);
        let published = home.join("child-run");
        let deadline = Instant::now() + Duration::from_secs(60);
        let run = loop {
            if let Ok(text) = std::fs::read_to_string(&published) {
                break text.trim().parse::<i64>().expect("run id");
            }
            assert!(child.0.try_wait().expect("child status").is_none(), "the child ended before publishing its run");
            assert!(Instant::now() < deadline, "the child did not publish its run within a minute");
            std::thread::sleep(Duration::from_millis(20));
        };
        std::fs::remove_file(&published).expect("consume the run id");
        (child, run)
    }

    /// SIGKILL on Unix: no cleanup code runs.
    pub fn kill(mut self) {
        self.0.kill().expect("kill");
        self.0.wait().expect("wait");
    }
}

impl Drop for ChildTest {
    fn drop(&mut self) {
        // Already gone when `kill` ran; otherwise the test failed and the child must not outlive it.
        if self.0.kill().is_ok() {
            drop(self.0.wait());
        }
    }
}
