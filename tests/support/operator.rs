//! The operator binary as a child process of a test: watching one namespace, pointed at an
//! emulator, with its JSON log kept in a file the test can scan. Killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::emulator::Emulator;
use super::{Cluster, scratch_dir};

pub struct Operator {
    child: Option<Child>,
    pub log_file: PathBuf,
    namespace: String,
    args: Vec<String>,
    arm: String,
    exec_host: String,
    ca_file: PathBuf,
    restarts: u32,
}

impl Operator {
    /// Starts `kubeinvoke controller` for `namespace` against `emulator`, with extra flags.
    pub fn start(emulator: &Emulator, namespace: &str, args: &[&str]) -> Operator {
        let dir = scratch_dir("operator");
        let mut op = Operator {
            child: None,
            log_file: dir.join("operator.log"),
            namespace: namespace.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            arm: emulator.arm.clone(),
            exec_host: emulator.exec_host.clone(),
            ca_file: emulator.ca_file.clone(),
            restarts: 0,
        };
        op.spawn();
        op
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .expect("operator log");
        let child = Command::new(env!("CARGO_BIN_EXE_kubeinvoke"))
            .arg("controller")
            .args([
                "--watch-namespace",
                &self.namespace,
                "--arm-endpoint",
                &self.arm,
                "--authority-host",
                &self.arm,
            ])
            .arg("--ca-file")
            .arg(&self.ca_file)
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info,kubeinvoke=debug",
                "--http-addr",
                "127.0.0.1:0",
            ])
            // The emulator's exec host, unless the test chooses the list itself.
            .args(
                (!self.args.iter().any(|a| a == "--aci-exec-hosts"))
                    .then_some(["--aci-exec-hosts", self.exec_host.as_str()])
                    .into_iter()
                    .flatten(),
            )
            .args(&self.args)
            .env("KUBECONFIG", &Cluster::get().kubeconfig)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kubeinvoke controller");
        self.child = Some(child);
    }

    /// SIGKILL: no graceful shutdown, like a crashed or evicted pod.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (with a deadline) for the process to exit; returns whether it exited
    /// successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Sends `signal` (a name such as `STOP` or `CONT`) to the running process.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the operator is running");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", child.id());
    }

    /// Whether the process is still alive (it did not exit or crash).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills and starts again with the same flags.
    pub fn restart(&mut self) {
        self.kill();
        self.restarts += 1;
        self.spawn();
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Base URL of the operator's HTTP server (/metrics, /healthz, /readyz) of its latest start,
    /// from its log line.
    pub async fn http_url(&self) -> String {
        super::wait_until(
            std::time::Duration::from_secs(30),
            "the operator's HTTP server",
            || async {
                let logs = self.logs();
                let line = logs
                    .lines()
                    .rev()
                    .find(|l| l.contains("serving /metrics"))?;
                let entry: serde_json::Value = serde_json::from_str(line).ok()?;
                Some(format!("http://{}", entry["addr"].as_str()?))
            },
        )
        .await
    }

    /// The value of `series` (a line prefix, labels included) on the operator's /metrics now.
    #[allow(dead_code)]
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let url = format!("{}/metrics", self.http_url().await);
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        sample(&text, series)
    }
}

/// The value of the first sample of `series` (a line prefix, labels included) in `text`.
#[allow(dead_code)]
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- operator log ({}) ---\n{}",
                self.log_file.display(),
                self.logs()
            );
        }
    }
}
