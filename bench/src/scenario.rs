//! The three scenarios: A (a burst of AKS run commands through the operator), B (many finished
//! resources at rest) and C (the same burst through the Azure SDK for Python, no operator).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kubeinvoke::api::{KubeconfigExport, RemoteCommand};
use serde_json::{Value, json};

use crate::follow::follow;
use crate::procs::{Emulator, Error, Operator, cpu_seconds, cpu_split, peak_rss_mib};
use crate::stats::Budget;

pub const TENANT: &str = "00000000-0000-0000-0000-000000000001";
pub const CLIENT_ID: &str = "11111111-1111-1111-1111-111111111111";
pub const CLIENT_SECRET: &str = "emulator-secret";
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";
pub const CLUSTER: &str = "aks1";

/// Kubernetes requests the driver keeps in flight while creating resources.
const CREATE_CONCURRENCY: usize = 48;

pub fn cluster_id() -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}"
    )
}

/// The emulator's world: one AKS cluster whose run commands take `duration` seconds.
pub fn world(duration: f64) -> String {
    world_with(&format!("{{name: {CLUSTER}, commandDuration: {duration}}}"))
}

/// The emulator's world: our principal, one subscription, and `cluster` (a YAML flow mapping) in
/// its resource group `rg1`.
pub fn world_with(cluster: &str) -> String {
    format!(
        r#"tenants: [{{id: "{TENANT}"}}]
principals:
  - {{tenantId: "{TENANT}", clientId: "{CLIENT_ID}", clientSecret: "{CLIENT_SECRET}"}}
subscriptions:
  - id: "{SUBSCRIPTION}"
    tenantId: "{TENANT}"
    resourceGroups:
      - name: rg1
        managedClusters:
          - {cluster}
"#
    )
}

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

pub fn parse_time(s: &str) -> Option<f64> {
    let t: Timestamp = s.parse().ok()?;
    Some(t.as_nanosecond() as f64 / 1e9)
}

/// A namespace with the emulator principal's credential Secret.
pub async fn namespace(client: &Client, name: &str) -> Result<(), Error> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "kubeinvoke-credentials"},
        "stringData": {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": CLIENT_SECRET}
    }))?;
    Api::<Secret>::namespaced(client.clone(), name)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// What the emulator saw during one scenario.
#[derive(Debug, Default, Clone)]
pub struct ArmView {
    /// Requests by operation and HTTP status.
    pub by_kind: BTreeMap<String, BTreeMap<u16, u64>>,
    pub throttled: u64,
    pub early: u64,
    /// TLS handshakes the emulator's ARM port completed, and how many of those connections spoke
    /// HTTP/2 (each new connection is one handshake).
    pub handshakes: u64,
    pub http2_connections: u64,
    /// Accepted runCommand POSTs by correlation id: (time, how many with that id).
    pub dispatches: HashMap<String, f64>,
    /// Accepted runCommand POSTs by command line (duplicates show here).
    pub dispatch_counts: HashMap<String, u64>,
    /// The first commandResults poll that found the result, by correlation id: its time.
    pub results: HashMap<String, f64>,
}

impl ArmView {
    /// "n (m HTTP/2) = x per command": new connections to ARM over a run of `commands`.
    pub fn connections(&self, commands: usize) -> String {
        format!(
            "{} ({} HTTP/2) = {:.3} per command",
            self.handshakes,
            self.http2_connections,
            self.handshakes as f64 / commands.max(1) as f64
        )
    }

    pub async fn read(emulator: &Emulator) -> Result<ArmView, Error> {
        let counters = emulator.get("counters").await?;
        let requests = emulator.get("requests").await?;
        let mut view = ArmView {
            throttled: counters["throttled429"].as_u64().unwrap_or(0),
            early: counters["earlyRequests"].as_u64().unwrap_or(0),
            handshakes: counters["tlsHandshakes"].as_u64().unwrap_or(0),
            http2_connections: counters["http2Connections"].as_u64().unwrap_or(0),
            ..Default::default()
        };
        if let Some(map) = counters["dispatches"].as_object() {
            for (cmd, n) in map {
                view.dispatch_counts
                    .insert(cmd.clone(), n.as_u64().unwrap_or(0));
            }
        }
        let entries = requests
            .as_array()
            .or_else(|| requests["requests"].as_array())
            .cloned()
            .unwrap_or_default();
        // Per-request times come from the log (capped by the emulator); totals from the counters.
        if let Some(ops) = counters["status"].as_object() {
            for (op, statuses) in ops {
                for (code, n) in statuses.as_object().into_iter().flatten() {
                    let code = code.parse::<u16>().unwrap_or(0);
                    *view
                        .by_kind
                        .entry(op.clone())
                        .or_default()
                        .entry(code)
                        .or_default() += n.as_u64().unwrap_or(0);
                }
            }
        }
        for e in entries {
            let op = e["operation"].as_str().unwrap_or("unknown");
            let status = e["status"].as_u64().unwrap_or(0);
            if op == "aks.runCommand"
                && status == 202
                && let (Some(corr), Some(t)) = (
                    e["correlationId"].as_str(),
                    e["time"].as_str().and_then(parse_time),
                )
            {
                view.dispatches.entry(corr.to_string()).or_insert(t);
            }
            if op == "aks.commandResult"
                && status == 200
                && let (Some(corr), Some(t)) = (
                    e["correlationId"].as_str(),
                    e["time"].as_str().and_then(parse_time),
                )
            {
                view.results.entry(corr.to_string()).or_insert(t);
            }
        }
        Ok(view)
    }

    pub fn arm_requests(&self) -> u64 {
        self.by_kind
            .iter()
            .filter(|(op, _)| !op.starts_with("entra.") && !op.starts_with("msi."))
            .flat_map(|(_, s)| s.values())
            .sum()
    }

    /// Commands ARM accepted more than once.
    pub fn duplicates(&self) -> u64 {
        self.dispatch_counts
            .values()
            .filter(|n| **n > 1)
            .map(|n| n - 1)
            .sum()
    }
}

/// Per-run figures shared by A and C.
#[derive(Debug, Default, Clone)]
pub struct BurstResult {
    pub label: String,
    pub commands: usize,
    pub seconds: f64,
    pub succeeded: usize,
    pub other_outcomes: BTreeMap<String, usize>,
    /// ARM POST received − resource created (A) / call submitted (C), seconds, in creation order.
    pub dispatch_latency: Vec<f64>,
    /// When ARM accepted each dispatch (A), in creation order.
    pub dispatch_times: Vec<f64>,
    /// Status terminal (A) / `.result()` returned (C) − result available at ARM, seconds.
    pub status_lag: Vec<f64>,
    /// Where each status lag of A went, in the same order: (until the poll that found the
    /// result, from that poll until the watch saw the terminal status), seconds.
    pub lag_parts: Vec<(f64, f64)>,
    pub cpu_seconds: f64,
    /// Of `cpu_seconds`, those spent in the kernel (system calls, the network stack).
    pub system_cpu_seconds: f64,
    pub peak_rss_mib: f64,
    pub arm: ArmView,
    pub client_budget: Option<Budget>,
    pub note: String,
}

/// Scenario A: `n` AKS run commands created at once; the operator runs them all.
#[allow(clippy::too_many_arguments)]
pub async fn burst_through_operator(
    client: &Client,
    emulator: &Emulator,
    operator_bin: &Path,
    kubeconfig: &Path,
    work_dir: &Path,
    n: usize,
    duration: f64,
    fraction: f64,
    policy: &str,
    timeout: Duration,
) -> Result<BurstResult, Error> {
    let ns = format!(
        "bench-a-{}-{}-{}",
        (fraction * 100.0).round(),
        policy.to_ascii_lowercase(),
        std::process::id()
    );
    namespace(client, &ns).await?;
    let budget = Budget::ARM.scaled(fraction);
    let flags = budget.operator_flags();
    emulator.reset().await?;
    let operator =
        Operator::ready(operator_bin, kubeconfig, emulator, &ns, &flags, work_dir).await?;
    let cpu_before = cpu_split(operator.pid())?;

    let api: Api<RemoteCommand> = Api::namespaced(client.clone(), &ns);
    let terminal: Arc<Mutex<HashMap<String, (f64, String)>>> = Default::default();
    let watch = {
        let terminal = terminal.clone();
        follow(api.clone(), move |rc, at| {
            let Some(status) = rc.status.as_ref() else {
                return;
            };
            if status.phase.is_some_and(|p| p.is_terminal()) {
                let outcome = format!(
                    "{:?}/{}",
                    status.phase.unwrap_or_default(),
                    status.reason.clone().unwrap_or_default()
                );
                terminal
                    .lock()
                    .expect("lock")
                    .entry(rc.uid().unwrap_or_default())
                    .or_insert((at, outcome));
            }
        })
    };

    let started = Instant::now();
    let t0 = now_secs();
    // Each command's place in the API server's order: the resourceVersion its create returned (an
    // etcd revision here). With many creates in flight their answers come back in another order,
    // and creationTimestamp has whole seconds only.
    let created: Vec<(String, f64, u64)> = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let spec = json!({"target": {"aks": {"resourceId": cluster_id()}}, "command": format!("echo bench-{i}"), "dispatchPolicy": policy});
                let rc = RemoteCommand::new(&format!("cmd-{i:05}"), serde_json::from_value(spec)?);
                let rc = api.create(&PostParams::default(), &rc).await?;
                let stored = rc.resource_version().and_then(|v| v.parse().ok());
                let stored = stored.ok_or("a create answered without a numeric resourceVersion")?;
                Ok::<_, Error>((rc.uid().unwrap_or_default(), now_secs(), stored))
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect()
        .await?;
    let deadline = started + timeout;
    loop {
        let done = terminal.lock().expect("lock").len();
        if done >= n {
            break;
        }
        if Instant::now() > deadline {
            watch.abort();
            return Err(format!("scenario A: only {done} of {n} commands finished within {timeout:?}; operator log {}", operator.log_file.display()).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();
    let log_file = operator.log_file.clone();
    let cpu_after = cpu_split(operator.pid())?;
    let rss = peak_rss_mib(operator.pid())?;
    drop(operator);
    let arm = ArmView::read(emulator).await?;

    let terminal = terminal.lock().expect("lock").clone();
    let last = terminal.values().map(|(t, _)| *t).fold(t0, f64::max);
    let mut result = BurstResult {
        label: format!(
            "A (operator, {policy}, client buckets at {:.0}% of ARM)",
            fraction * 100.0
        ),
        commands: n,
        seconds: last - t0,
        cpu_seconds: (cpu_after.0 + cpu_after.1) - (cpu_before.0 + cpu_before.1),
        system_cpu_seconds: cpu_after.1 - cpu_before.1,
        peak_rss_mib: rss,
        client_budget: Some(budget),
        // The file name only: the scratch directory is the machine's (`--scratch`).
        note: format!(
            "operator log: `{}` under the scratch directory",
            log_file
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ),
        ..Default::default()
    };
    let mut by_creation = created.clone();
    by_creation.sort_by_key(|c| c.2);
    for (uid, created_at, _) in &by_creation {
        let (done_at, outcome) = terminal.get(uid).cloned().unwrap_or_default();
        if outcome == "Succeeded/Completed" {
            result.succeeded += 1;
        } else {
            *result.other_outcomes.entry(outcome).or_default() += 1;
        }
        // Correlation ids are GUIDs derived from (uid, generation 1, no runId, attempt); the first
        // accepted attempt is the dispatch.
        let Some((corr, dispatched)) = (1..=10)
            .map(|attempt| {
                kubeinvoke::controllers::reason::correlation_id(&[
                    uid.as_str(),
                    "1",
                    "",
                    &attempt.to_string(),
                ])
            })
            .filter_map(|corr| arm.dispatches.get(&corr).map(|t| (corr, *t)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
        else {
            continue;
        };
        let available = dispatched + duration;
        result.dispatch_latency.push(dispatched - created_at);
        result.dispatch_times.push(dispatched);
        result.status_lag.push(done_at - available);
        if let Some(found) = arm.results.get(&corr) {
            result.lag_parts.push((found - available, done_at - found));
        }
    }
    result.arm = arm;
    Ok(result)
}

/// Scenario C: the same burst through `begin_run_command(...).result()` in a thread pool.
pub async fn burst_through_sdk(
    emulator: &Emulator,
    python: &Path,
    script: &Path,
    n: usize,
    concurrency: usize,
    duration: f64,
) -> Result<(BurstResult, Value), Error> {
    emulator.reset().await?;
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args(["--arm", &emulator.arm, "--ca"])
        .arg(&emulator.ca_file)
        .args([
            "--commands",
            &n.to_string(),
            "--concurrency",
            &concurrency.to_string(),
        ])
        .args([
            "--tenant",
            TENANT,
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
        ])
        .args([
            "--subscription",
            SUBSCRIPTION,
            "--resource-group",
            "rg1",
            "--cluster",
            CLUSTER,
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    if !out.status.success() {
        return Err(format!(
            "scenario C: {} exited with {}",
            script.display(),
            out.status
        )
        .into());
    }
    let report: Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap_or_default(),
    )?;
    let arm = ArmView::read(emulator).await?;
    let mut result = BurstResult {
        label: format!("C (Azure SDK for Python, {concurrency} threads)"),
        commands: n,
        seconds: report["seconds"].as_f64().unwrap_or_default(),
        succeeded: report["succeeded"].as_u64().unwrap_or_default() as usize,
        cpu_seconds: report["cpuSeconds"].as_f64().unwrap_or_default(),
        system_cpu_seconds: report["systemCpuSeconds"].as_f64().unwrap_or_default(),
        peak_rss_mib: report["peakRssMiB"].as_f64().unwrap_or_default(),
        ..Default::default()
    };
    let failed = n.saturating_sub(result.succeeded);
    if failed > 0 {
        result.other_outcomes.insert("error".into(), failed);
    }
    if let Some(calls) = report["calls"].as_array() {
        for call in calls {
            let id = call["id"].as_str().unwrap_or_default();
            let (Some(submitted), Some(done)) = (call["submitted"].as_f64(), call["done"].as_f64())
            else {
                continue;
            };
            if let Some(dispatched) = arm.dispatches.get(id) {
                result.dispatch_latency.push(dispatched - submitted);
                result.status_lag.push(done - (dispatched + duration));
            }
        }
    }
    result.note = format!(
        "{} run_command calls re-submitted after an exception",
        report["resubmits"].as_u64().unwrap_or_default()
    );
    result.arm = arm;
    Ok((result, report))
}

/// Scenario B figures.
#[derive(Debug, Default, Clone)]
pub struct RestResult {
    pub commands: usize,
    pub exports: usize,
    pub cpu_seconds: f64,
    pub settle_seconds: f64,
    pub peak_rss_mib: f64,
    pub arm_requests: u64,
}

/// Scenario B: `commands` finished RemoteCommands and `exports` exported KubeconfigExports exist
/// before the operator starts; its memory once it has listed and reconciled them all.
#[allow(clippy::too_many_arguments)]
pub async fn at_rest(
    client: &Client,
    emulator: &Emulator,
    operator_bin: &Path,
    kubeconfig: &Path,
    work_dir: &Path,
    commands: usize,
    exports: usize,
) -> Result<RestResult, Error> {
    let ns = format!("bench-b-{}", std::process::id());
    namespace(client, &ns).await?;
    let rcs: Api<RemoteCommand> = Api::namespaced(client.clone(), &ns);
    let kcxs: Api<KubeconfigExport> = Api::namespaced(client.clone(), &ns);
    let now = Timestamp::now();
    let later = now + k8s_openapi::jiff::SignedDuration::from_hours(6);
    let ready = json!([{"type": "Ready", "status": "True", "reason": "Completed", "message": "done", "lastTransitionTime": now.to_string(), "observedGeneration": 1}]);
    futures::stream::iter(0..commands)
        .map(|i| {
            let rcs = rcs.clone();
            let ready = ready.clone();
            async move {
                let name = format!("done-{i:05}");
                let spec = json!({"target": {"aks": {"resourceId": cluster_id()}}, "command": format!("kubectl get pods -A -l run={i}")});
                rcs.create(&PostParams::default(), &RemoteCommand::new(&name, serde_json::from_value(spec)?)).await?;
                let status = json!({"status": {
                    "phase": "Succeeded", "observedGeneration": 1, "attempts": 1, "reason": "Completed",
                    "message": "the command exited with 0", "exitCode": 0,
                    "commandId": format!("{i:032x}"), "startTime": now.to_string(), "completionTime": now.to_string(),
                    "outputSecretName": format!("{name}-output"), "outputBytes": 180,
                    "outputTail": "NAMESPACE     NAME                       READY   STATUS    RESTARTS   AGE\nkube-system   coredns-7d4d5d6f8-abcde    1/1     Running   0          3d\n",
                    "conditions": ready,
                }});
                rcs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    futures::stream::iter(0..exports)
        .map(|i| {
            let kcxs = kcxs.clone();
            let ready = ready.clone();
            async move {
                let name = format!("kcx-{i:04}");
                let spec = json!({"source": {"aks": {"resourceId": cluster_id(), "role": "User"}}, "secret": {"name": format!("{name}-kubeconfig"), "format": "Flux"}});
                kcxs.create(&PostParams::default(), &KubeconfigExport::new(&name, serde_json::from_value(spec)?)).await?;
                let status = json!({"status": {
                    "observedGeneration": 1, "secretName": format!("{name}-kubeconfig"),
                    "server": "https://aks1-dns-0123abcd.hcp.westeurope.azmk8s.io:443",
                    "contentHash": format!("sha256:{:064x}", i), "lastRefreshTime": now.to_string(),
                    "nextRefreshTime": later.to_string(), "reason": "Exported", "message": "kubeconfig exported",
                    "conditions": ready,
                }});
                kcxs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;

    emulator.reset().await?;
    let started = Instant::now();
    let mut operator = Operator::start(
        operator_bin,
        kubeconfig,
        emulator,
        &ns,
        &[],
        work_dir.join(format!("{ns}.log")),
    )?;
    operator.wait_ready(Duration::from_secs(120)).await?;
    // Settled: less than 20 ms of CPU over two seconds, checked every second (at most 120 s).
    let mut samples = vec![cpu_seconds(operator.pid())?];
    while started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(cpu_seconds(operator.pid())?);
        let k = samples.len();
        if k >= 3 && samples[k - 1] - samples[k - 3] < 0.02 {
            break;
        }
    }
    let result = RestResult {
        commands,
        exports,
        cpu_seconds: cpu_seconds(operator.pid())?,
        settle_seconds: started.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_mib(operator.pid())?,
        arm_requests: ArmView::read(emulator).await?.arm_requests(),
    };
    drop(operator);
    Ok(result)
}

/// Where the run's scratch files go.
pub fn work_dir(base: &Path) -> PathBuf {
    base.join(format!("run-{}", std::process::id()))
}

/// Scenario E: what a pipeline waits — `kubectl invoke` (the kubectl-invoke binary next to the
/// operator) run `concurrency` at a time, `n` in all; for each, the time from its result being
/// available at ARM (dispatch + duration) to the CLI's exit.
#[derive(Debug, Default, Clone)]
pub struct CliResult {
    pub concurrency: usize,
    pub invocations: usize,
    pub succeeded: usize,
    /// CLI exit − (ARM dispatch + command duration), seconds.
    pub wait_after_result: Vec<f64>,
}

#[allow(clippy::too_many_arguments)]
pub async fn through_cli(
    client: &Client,
    emulator: &Emulator,
    operator_bin: &Path,
    kubeconfig: &Path,
    work_dir: &Path,
    n: usize,
    concurrency: usize,
    duration: f64,
) -> Result<CliResult, Error> {
    let ns = format!("bench-e-{concurrency}-{}", std::process::id());
    namespace(client, &ns).await?;
    emulator.reset().await?;
    let budget = Budget::ARM.scaled(0.9);
    let flags = budget.operator_flags();
    let operator =
        Operator::ready(operator_bin, kubeconfig, emulator, &ns, &flags, work_dir).await?;
    let cli = operator_bin.with_file_name("kubectl-invoke");
    let runs: Vec<(String, f64, bool)> = futures::stream::iter(0..n)
        .map(|i| {
            let (cli, ns) = (cli.clone(), ns.clone());
            async move {
                let out = tokio::process::Command::new(&cli)
                    .env("KUBECONFIG", kubeconfig)
                    .args(["-n", &ns, "aks", &cluster_id(), "--command"])
                    .arg(format!("echo cli-{i}"))
                    .output()
                    .await
                    .map_err(|e| format!("{}: {e}", cli.display()))?;
                let exited = now_secs();
                let stderr = String::from_utf8_lossy(&out.stderr);
                let name = stderr
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("remotecommand {ns}/")))
                    .and_then(|l| l.strip_suffix(" created"))
                    .unwrap_or_default()
                    .to_string();
                Ok::<_, Error>((name, exited, out.status.success()))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    drop(operator);
    let arm = ArmView::read(emulator).await?;
    let api: Api<RemoteCommand> = Api::namespaced(client.clone(), &ns);
    let uids: HashMap<String, String> = api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .map(|rc| (rc.name_any(), rc.uid().unwrap_or_default()))
        .collect();
    let mut result = CliResult {
        concurrency,
        invocations: n,
        ..Default::default()
    };
    for (name, exited, ok) in runs {
        if !ok {
            continue;
        }
        result.succeeded += 1;
        let Some(uid) = uids.get(&name) else { continue };
        let corr = kubeinvoke::controllers::reason::correlation_id(&[uid, "1", "", "1"]);
        if let Some(dispatched) = arm.dispatches.get(&corr) {
            result
                .wait_after_result
                .push(exited - (dispatched + duration));
        }
    }
    Ok(result)
}
