//! The processes under test: the emulator and the operator as children of the driver, and what
//! the kernel says about their CPU time and memory (`/proc/<pid>/stat`, `/proc/<pid>/status`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64, Error> {
    let (user, system) = cpu_split(pid)?;
    Ok(user + system)
}

/// CPU seconds a process has used so far: (in user space, in the kernel on its behalf).
pub fn cpu_split(pid: u32) -> Result<(f64, f64), Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its closing ')' are fixed.
    let rest = stat.rsplit_once(')').ok_or("malformed /proc/<pid>/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at indexes 11 and 12.
    let ticks = clock_ticks_per_second();
    Ok((
        fields[11].parse::<f64>()? / ticks,
        fields[12].parse::<f64>()? / ticks,
    ))
}

/// CPU seconds so far of every process whose command name is `comm` (e.g. `kube-apiserver`).
pub fn cpu_seconds_of(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .filter_map(|pid| cpu_seconds(pid).ok())
        .sum()
}

/// The machine's CPU seconds so far, all cores together (`/proc/stat`, less idle and iowait).
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let ticks: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    busy / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    // USER_HZ is 100 on every Linux architecture the project runs on; `getconf` confirms it.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Peak resident set size in MiB (`VmHWM`).
pub fn peak_rss_mib(pid: u32) -> Result<f64, Error> {
    status_mib(pid, "VmHWM:")
}

/// The resident memory of `pid` now (`VmRSS`), in MiB.
pub fn rss_mib(pid: u32) -> Result<f64, Error> {
    status_mib(pid, "VmRSS:")
}

fn status_mib(pid: u32, field: &str) -> Result<f64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| format!("no {field} in /proc/<pid>/status"))?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("malformed {field}"))?
        .parse()?;
    Ok(kib / 1024.0)
}

/// The emulator, started on a free loopback port.
pub struct Emulator {
    child: Child,
    pub arm: String,
    pub control: String,
    pub ca_file: PathBuf,
    http: reqwest::Client,
}

impl Emulator {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start(
        binary: &Path,
        dir: &Path,
        world: &str,
        args: &[String],
    ) -> Result<Emulator, Error> {
        std::fs::create_dir_all(dir)?;
        let world_file = dir.join("world.yaml");
        std::fs::write(&world_file, world)?;
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir)
            .arg("--world")
            .arg(&world_file)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("emulator.log"))?)
            .spawn()
            .map_err(|e| format!("start {}: {e}", binary.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("emulator stdout")?).read_line(&mut line)?;
        let ready: Value = serde_json::from_str(&line).map_err(|e| {
            format!(
                "the emulator printed no ready line ({e}): {line:?}; see {}",
                dir.display()
            )
        })?;
        let field = |k: &str| -> Result<String, Error> {
            Ok(ready[k]
                .as_str()
                .ok_or(format!("ready line has no {k}"))?
                .to_string())
        };
        let ca_file = PathBuf::from(field("caFile")?);
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_file)?)?;
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()?;
        Ok(Emulator {
            child,
            arm: field("armEndpoint")?,
            control: field("controlUrl")?,
            ca_file,
            http,
        })
    }

    pub async fn get(&self, what: &str) -> Result<Value, Error> {
        let resp = self
            .http
            .get(format!("{}/{what}", self.control))
            .send()
            .await?;
        Ok(resp.error_for_status()?.json().await?)
    }

    /// Clears counters, the request log and the rate-limit buckets (full again).
    pub async fn reset(&self) -> Result<(), Error> {
        self.http
            .post(format!("{}/reset", self.control))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubeinvoke controller` watching one namespace, pointed at the emulator.
pub struct Operator {
    child: Child,
    pub log_file: PathBuf,
}

impl Operator {
    /// An operator watching `namespace`, started and ready; its log is `<work_dir>/<namespace>.log`.
    pub async fn ready(
        binary: &Path,
        kubeconfig: &Path,
        emulator: &Emulator,
        namespace: &str,
        extra: &[String],
        work_dir: &Path,
    ) -> Result<Operator, Error> {
        let log = work_dir.join(format!("{namespace}.log"));
        let mut operator = Self::start(binary, kubeconfig, emulator, namespace, extra, log)?;
        operator.wait_ready(Duration::from_secs(60)).await?;
        Ok(operator)
    }

    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        emulator: &Emulator,
        namespace: &str,
        extra: &[String],
        log_file: PathBuf,
    ) -> Result<Operator, Error> {
        Self::start_under(
            &[],
            binary,
            kubeconfig,
            emulator,
            namespace,
            extra,
            log_file,
        )
    }

    /// Like [`Operator::start`], run by `wrapper` (e.g. valgrind and its flags) when not empty.
    pub fn start_under(
        wrapper: &[String],
        binary: &Path,
        kubeconfig: &Path,
        emulator: &Emulator,
        namespace: &str,
        extra: &[String],
        log_file: PathBuf,
    ) -> Result<Operator, Error> {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .arg("controller")
            .args(["--watch-namespace", namespace])
            .args([
                "--arm-endpoint",
                &emulator.arm,
                "--authority-host",
                &emulator.arm,
            ])
            .arg("--ca-file")
            .arg(&emulator.ca_file)
            .args([
                "--http-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log-level",
                &std::env::var("KUBEINVOKE_BENCH_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
            ])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_file)?)
            .spawn()
            .map_err(|e| format!("start {}: {e}", binary.display()))?;
        Ok(Operator { child, log_file })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (a graceful stop) and the exit status.
    pub fn stop(mut self) -> Result<std::process::ExitStatus, Error> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        Ok(self.child.wait()?)
    }

    /// Waits until `/readyz` answers 200 (caches synced).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let http = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "the operator exited ({status}); log: {}",
                    self.log_file.display()
                )
                .into());
            }
            if let Some(url) = self.http_url()
                && let Ok(resp) = http.get(format!("{url}/readyz")).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the operator was not ready within {timeout:?}; log: {}",
                    self.log_file.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn http_url(&self) -> Option<String> {
        let log = std::fs::read_to_string(&self.log_file).ok()?;
        let line = log.lines().find(|l| l.contains("serving /metrics"))?;
        let entry: Value = serde_json::from_str(line).ok()?;
        let addr = entry["addr"]
            .as_str()
            .or(entry["fields"]["addr"].as_str())?;
        Some(format!("http://{addr}"))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
