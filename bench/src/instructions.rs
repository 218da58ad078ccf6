//! A CPU figure that does not depend on what else the machine is doing: instructions the operator
//! executes per command, counted by valgrind's callgrind (hardware counters are not available on
//! every machine; callgrind is exact and the same from run to run). Two runs under callgrind — an
//! idle one and one with `n` commands — and the difference per command; plus where the
//! instructions go (callgrind_annotate's top functions).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use kubeinvoke::api::RemoteCommand;
use serde_json::json;

use crate::procs::{Emulator, Error, Operator};
use crate::scenario::{cluster_id, namespace};

#[derive(Debug, Default, Clone)]
pub struct InstructionsResult {
    pub commands: usize,
    pub idle: u64,
    pub loaded: u64,
    /// callgrind_annotate's functions with the most instructions of their own, loaded run.
    pub top: Vec<String>,
}

impl InstructionsResult {
    pub fn per_command(&self) -> f64 {
        self.loaded.saturating_sub(self.idle) as f64 / self.commands.max(1) as f64
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn count(
    client: &Client,
    emulator: &Emulator,
    operator_bin: &Path,
    kubeconfig: &Path,
    work_dir: &Path,
    n: usize,
) -> Result<InstructionsResult, Error> {
    let idle = run(client, emulator, operator_bin, kubeconfig, work_dir, 0).await?;
    let loaded = run(client, emulator, operator_bin, kubeconfig, work_dir, n).await?;
    let top = top_of_difference(&self_costs(&idle.1)?, &self_costs(&loaded.1)?, n);
    Ok(InstructionsResult {
        commands: n,
        idle: idle.0,
        loaded: loaded.0,
        top,
    })
}

/// Instructions spent in each function itself (callgrind_annotate's exclusive costs).
fn self_costs(profile: &Path) -> Result<HashMap<String, u64>, Error> {
    let annotate = Command::new("callgrind_annotate")
        .args(["--inclusive=no", "--auto=no", "--threshold=100"])
        .arg(profile)
        .output()
        .map_err(|e| format!("callgrind_annotate: {e}"))?;
    let mut costs = HashMap::new();
    for line in String::from_utf8_lossy(&annotate.stdout)
        .lines()
        .skip_while(|l| !l.contains("file:function"))
        .skip(2)
    {
        let line = line.trim();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        // "(12.3%)  file:function [object]" -> "file:function"
        let function = rest
            .split_once(')')
            .map_or(rest, |(_, f)| f)
            .trim()
            .trim_start_matches("* ")
            .split(" [")
            .next()
            .unwrap_or_default()
            .to_string();
        *costs.entry(function).or_default() += count;
    }
    Ok(costs)
}

/// The functions whose own instructions grew the most from the idle run to the loaded one, per
/// command: what the commands cost, without start-up (which, under valgrind, is dominated by
/// seeding the TLS library's random generator once).
fn top_of_difference(
    idle: &HashMap<String, u64>,
    loaded: &HashMap<String, u64>,
    n: usize,
) -> Vec<String> {
    let mut grown: Vec<(&String, u64)> = loaded
        .iter()
        .map(|(f, l)| (f, l.saturating_sub(idle.get(f).copied().unwrap_or(0))))
        .filter(|(_, d)| *d > 0)
        .collect();
    let total: u64 = grown.iter().map(|(_, d)| d).sum();
    grown.sort_by_key(|g| std::cmp::Reverse(g.1));
    grown
        .into_iter()
        .take(20)
        .map(|(f, d)| {
            format!(
                "{:>9} per command ({:4.1}%)  {}",
                d / n.max(1) as u64,
                100.0 * d as f64 / total.max(1) as f64,
                short_name(f)
            )
        })
        .collect()
}

/// `file:function` without the registry or toolchain prefix of the file.
fn short_name(function: &str) -> String {
    let (file, name) = function.split_once(':').unwrap_or(("", function));
    let file = if let Some((_, f)) = file.split_once("/registry/src/") {
        f.split_once('/').map_or(f, |(_, f)| f)
    } else if let Some((_, f)) = file.split_once("/library/") {
        f
    } else {
        file
    };
    format!("{file}:{name}")
}

/// One operator run under callgrind with `n` commands; its instruction total and profile file.
async fn run(
    client: &Client,
    emulator: &Emulator,
    operator_bin: &Path,
    kubeconfig: &Path,
    work_dir: &Path,
    n: usize,
) -> Result<(u64, PathBuf), Error> {
    let ns = format!("bench-i-{n}-{}", std::process::id());
    namespace(client, &ns).await?;
    emulator.reset().await?;
    let out = work_dir.join(format!("callgrind-{n}.out"));
    let valgrind = [
        "valgrind".to_string(),
        "--tool=callgrind".to_string(),
        "--quiet".to_string(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    let mut operator = Operator::start_under(
        &valgrind,
        operator_bin,
        kubeconfig,
        emulator,
        &ns,
        &[],
        work_dir.join(format!("{ns}.log")),
    )?;
    operator.wait_ready(Duration::from_secs(300)).await?;
    let api: Api<RemoteCommand> = Api::namespaced(client.clone(), &ns);
    for i in 0..n {
        let spec = json!({"target": {"aks": {"resourceId": cluster_id()}}, "command": format!("echo counted-{i}")});
        let rc = RemoteCommand::new(&format!("i-{i:04}"), serde_json::from_value(spec)?);
        api.create(&PostParams::default(), &rc).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|rc| {
                rc.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p.is_terminal())
            })
            .count();
        if done >= n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {done} of {n} commands finished under callgrind").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A graceful stop: the operator exits and callgrind writes its totals.
    let status = operator.stop()?;
    if !status.success() {
        return Err(format!("the operator under callgrind exited with {status}").into());
    }
    let profile = std::fs::read_to_string(&out)?;
    let total = profile
        .lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no instruction total in {}", out.display()))?;
    Ok((total, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_is_what_the_commands_added() {
        let idle = HashMap::from([
            ("/aws-lc/jitter.c:jent_init".to_string(), 400_000_000),
            (
                "/x/.cargo/registry/src/index.crates.io-1/serde_json-1.0/src/de.rs:parse"
                    .to_string(),
                1_000,
            ),
        ]);
        let loaded = HashMap::from([
            ("/aws-lc/jitter.c:jent_init".to_string(), 400_000_000),
            (
                "/x/.cargo/registry/src/index.crates.io-1/serde_json-1.0/src/de.rs:parse"
                    .to_string(),
                501_000,
            ),
            (
                "/rustc/abc/library/alloc/src/vec.rs:alloc::vec::Vec<T>::push".to_string(),
                100_000,
            ),
        ]);
        let top = top_of_difference(&idle, &loaded, 10);
        assert_eq!(top.len(), 2, "start-up cost cancels out: {top:?}");
        assert!(
            top[0].contains("50000 per command")
                && top[0].contains("serde_json-1.0/src/de.rs:parse"),
            "{top:?}"
        );
        assert!(
            top[1].contains("alloc/src/vec.rs:alloc::vec::Vec<T>::push"),
            "{top:?}"
        );
    }
}
