//! A real `mlflow server` on 127.0.0.1 for the tests, from the virtual environment `scripts/setup.sh` installs
//! (`~/.cache/cliplab-mlflow-venv`, or `$CLIPLAB_MLFLOW_VENV`). Shared by the core's MLflow tests and the app's.
#![allow(dead_code)] // each test file uses a part

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use experiments::remote::mlflow::{Auth, Client};
use serde_json::Value;

/// A `mlflow server` on a free loopback port with a temporary backend store and artifact root; stopped (its
/// whole process group, by pid) when dropped.
pub struct MlflowServer {
    pub child: Child,
    pub uri: String,
    pub dir: tempfile::TempDir,
}

impl MlflowServer {
    pub fn start() -> MlflowServer {
        let venv = std::env::var_os("CLIPLAB_MLFLOW_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| dirs::home_dir().expect("a home folder").join(".cache/cliplab-mlflow-venv"));
        let mlflow = venv.join("bin/mlflow");
        assert!(
            mlflow.is_file(),
            "{} is missing: run scripts/setup.sh (it installs MLflow's tracking server for these tests)",
            mlflow.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
        let mut cmd = Command::new(&mlflow);
        cmd.args(["server", "--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.path().join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.path().join("artifacts"))
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // Its own process group: the server's workers go with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("start mlflow server");
        let mut server = MlflowServer { child, uri: format!("http://127.0.0.1:{port}"), dir };
        server.wait_healthy();
        server
    }

    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mlflow server exited ({status}):\n{}", self.log());
            }
            let health = ureq::get(&format!("{}/health", self.uri)).call();
            if health.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "mlflow server not healthy after 120 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.uri, Auth::None).expect("client")
    }

    pub fn artifacts(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    /// Stops the server (its process group), waiting for it to exit.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        // The group first (workers), then the leader for sure; either may be gone already.
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pid}")]).status(); // best effort: see above
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status(); // best effort: see above
        let _ = self.child.kill(); // already gone is fine
        let _ = self.child.wait(); // reaps it; an error only means it was reaped
    }

    pub fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Value {
        self.client().get(endpoint, query).unwrap_or_else(|e| panic!("{endpoint}: {e}"))
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        self.stop();
    }
}

