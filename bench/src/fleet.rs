//! Scenario D: a fleet — `subscriptions` subscriptions, each with its own principal and so its own
//! ARM budget, `per_subscription` AKS run commands each, all created at once. One operator serves
//! them all: does it keep every subscription at ARM's pace, and what does that cost it and the
//! management cluster's API server?

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use kubeinvoke::api::RemoteCommand;
use serde_json::json;

use crate::follow::follow;
use crate::procs::{
    Emulator, Error, Operator, cpu_seconds, cpu_seconds_of, machine_busy_seconds, peak_rss_mib,
    rss_mib,
};
use crate::scenario::{ArmView, TENANT, now_secs};
use crate::stats::{Budget, Work, lower_bound, polls_honouring_retry_after};

pub fn subscription(i: usize) -> String {
    format!("00000000-0000-0000-0000-1000000000{i:02}")
}

fn client_id(i: usize) -> String {
    format!("22222222-2222-2222-2222-2000000000{i:02}")
}

fn cluster_id(i: usize) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks{i}",
        subscription(i)
    )
}

/// The emulator's world: one subscription, principal and AKS cluster per tenant of the fleet.
pub fn world(subscriptions: usize, duration: f64) -> String {
    let mut w = format!("tenants: [{{id: \"{TENANT}\"}}]\nprincipals:\n");
    for i in 0..subscriptions {
        w.push_str(&format!(
            "  - {{tenantId: \"{TENANT}\", clientId: \"{}\", clientSecret: \"secret-{i}\", subscriptions: [\"{}\"]}}\n",
            client_id(i),
            subscription(i)
        ));
    }
    w.push_str("subscriptions:\n");
    for i in 0..subscriptions {
        w.push_str(&format!(
            "  - id: \"{}\"\n    tenantId: \"{TENANT}\"\n    resourceGroups:\n      - name: rg1\n        managedClusters:\n          - {{name: aks{i}, commandDuration: {duration}}}\n",
            subscription(i)
        ));
    }
    w
}

#[derive(Debug, Default, Clone)]
pub struct FleetResult {
    pub subscriptions: usize,
    pub per_subscription: usize,
    /// ARM's lower bound for one subscription's share.
    pub bound: f64,
    /// Time until every command of a subscription finished, per subscription (seconds).
    pub finished: Vec<f64>,
    pub succeeded: usize,
    pub throttled: u64,
    pub duplicates: u64,
    /// New connections the operator opened to ARM (the emulator's TLS handshakes).
    pub arm: ArmView,
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
    /// Resident memory once ready, before the first command.
    pub idle_rss_mib: f64,
    /// Who spent the machine's CPU from the first create to the last result, and how long that was.
    pub cpu: CpuAccount,
    pub wall: f64,
    /// Writes the operator made to the API server, by kind: status patches, Secret writes, Events.
    pub writes: BTreeMap<String, u64>,
}

impl FleetResult {
    pub fn commands(&self) -> usize {
        self.subscriptions * self.per_subscription
    }
    pub fn slowest(&self) -> f64 {
        self.finished.iter().copied().fold(0.0, f64::max)
    }
    pub fn writes_per_command(&self) -> f64 {
        self.writes.values().sum::<u64>() as f64 / self.commands().max(1) as f64
    }
}

/// Who spent the machine's CPU during a run, in CPU seconds.
#[derive(Debug, Default, Clone)]
pub struct CpuAccount {
    pub apiserver: f64,
    pub etcd: f64,
    pub operator: f64,
    pub emulator: f64,
    /// Every process together (the driver and the rest of the machine included).
    pub machine: f64,
}

impl CpuAccount {
    fn now(operator: u32, emulator: u32) -> CpuAccount {
        CpuAccount {
            apiserver: cpu_seconds_of("kube-apiserver"),
            etcd: cpu_seconds_of("etcd"),
            operator: cpu_seconds(operator).unwrap_or_default(),
            emulator: cpu_seconds(emulator).unwrap_or_default(),
            machine: machine_busy_seconds(),
        }
    }

    fn since(&self, before: &CpuAccount) -> CpuAccount {
        CpuAccount {
            apiserver: self.apiserver - before.apiserver,
            etcd: self.etcd - before.etcd,
            operator: self.operator - before.operator,
            emulator: self.emulator - before.emulator,
            machine: self.machine - before.machine,
        }
    }
}

/// The API server's own count of write requests, by (resource/subresource, verb).
pub struct ApiServerMetrics {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl ApiServerMetrics {
    pub fn new(env: &HashMap<String, String>) -> Result<Self, Error> {
        let get = |k: &str| env.get(k).cloned().ok_or(format!("cluster.env has no {k}"));
        let ca = std::fs::read(get("KUBEINVOKE_CA_FILE")?)?;
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
            .build()?;
        Ok(Self {
            url: format!("{}/metrics", get("KUBEINVOKE_APISERVER")?),
            token: get("KUBEINVOKE_ADMIN_TOKEN")?,
            http,
        })
    }

    /// `apiserver_request_total` of writes (POST, PUT, PATCH, APPLY — server-side apply — and DELETE)
    /// keyed `resource[/subresource] VERB`.
    pub async fn writes(&self) -> Result<BTreeMap<String, u64>, Error> {
        let text = self
            .http
            .get(&self.url)
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let mut out = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
        {
            let label = |name: &str| {
                let start = line.find(&format!("{name}=\""))? + name.len() + 2;
                let end = line[start..].find('"')? + start;
                Some(line[start..end].to_string())
            };
            let (Some(verb), Some(resource), Some(sub)) =
                (label("verb"), label("resource"), label("subresource"))
            else {
                continue;
            };
            if !matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE") {
                continue;
            }
            let n: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            let key = if sub.is_empty() {
                format!("{resource} {verb}")
            } else {
                format!("{resource}/{sub} {verb}")
            };
            *out.entry(key).or_default() += n as u64;
        }
        Ok(out)
    }
}

/// Writes between two snapshots of [`ApiServerMetrics::writes`] to what the operator writes (keys
/// starting with one of `prefixes`): other components (kubelet, controller-manager leases, node
/// status) and the driver itself (its creates) write to the API server meanwhile too.
pub fn operator_writes(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    prefixes: &[&str],
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(key, _)| prefixes.iter().any(|p| key.starts_with(p)))
        .map(|(key, v)| {
            let delta = v.saturating_sub(before.get(key).copied().unwrap_or(0));
            (key.clone(), delta)
        })
        .filter(|(_, delta)| *delta > 0)
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub async fn fleet_through_operator(
    client: &Client,
    metrics: &ApiServerMetrics,
    emulator: &Emulator,
    operator_bin: &Path,
    kubeconfig: &Path,
    work_dir: &Path,
    subscriptions: usize,
    per_subscription: usize,
    duration: f64,
    retry_after: u64,
    timeout: Duration,
) -> Result<FleetResult, Error> {
    let ns = format!("bench-d-{}", std::process::id());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for i in 0..subscriptions {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("sub-{i}")},
            "stringData": {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": client_id(i), "AZURE_CLIENT_SECRET": format!("secret-{i}")}
        }))?;
        secrets.create(&PostParams::default(), &secret).await?;
    }
    emulator.reset().await?;
    let budget = Budget::ARM.scaled(0.9);
    let flags = budget.operator_flags();
    let operator =
        Operator::ready(operator_bin, kubeconfig, emulator, &ns, &flags, work_dir).await?;
    let cpu_before = cpu_seconds(operator.pid())?;
    let idle_rss = rss_mib(operator.pid())?;

    let api: Api<RemoteCommand> = Api::namespaced(client.clone(), &ns);
    let terminal: Arc<Mutex<HashMap<String, (f64, bool)>>> = Default::default();
    let watch = {
        let terminal = terminal.clone();
        follow(api.clone(), move |rc, at| {
            let Some(status) = rc.status.as_ref() else {
                return;
            };
            if status.phase.is_some_and(|p| p.is_terminal()) {
                let ok = status.reason.as_deref() == Some("Completed");
                terminal
                    .lock()
                    .expect("lock")
                    .entry(rc.name_any())
                    .or_insert((at, ok));
            }
        })
    };
    let writes_before = metrics.writes().await?;
    let n = subscriptions * per_subscription;
    let started = Instant::now();
    let t0 = now_secs();
    let cpu_start = CpuAccount::now(operator.pid(), emulator.pid());
    // Interleaved: the first command of every subscription, then the second, ...
    futures::stream::iter(0..n)
        .map(|k| {
            let api = api.clone();
            let (sub, i) = (k % subscriptions, k / subscriptions);
            async move {
                let spec = json!({
                    "target": {"aks": {"resourceId": cluster_id(sub)}},
                    "command": format!("echo fleet-{sub}-{i}"),
                    "credentialRef": {"name": format!("sub-{sub}")},
                });
                let rc =
                    RemoteCommand::new(&format!("s{sub:02}-{i:04}"), serde_json::from_value(spec)?);
                api.create(&PostParams::default(), &rc).await?;
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(48)
        .try_collect::<Vec<_>>()
        .await?;
    let deadline = started + timeout;
    loop {
        let done = terminal.lock().expect("lock").len();
        if done >= n {
            break;
        }
        if Instant::now() > deadline {
            watch.abort();
            return Err(format!(
                "scenario D: only {done} of {n} commands finished within {timeout:?}; operator log {}",
                operator.log_file.display()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch.abort();
    let cpu_after = CpuAccount::now(operator.pid(), emulator.pid());
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(operator.pid())? - cpu_before;
    let rss = peak_rss_mib(operator.pid())?;
    drop(operator);
    let writes_after = metrics.writes().await?;
    let arm = ArmView::read(emulator).await?;
    let terminal = terminal.lock().expect("lock").clone();
    let mut finished = vec![0.0f64; subscriptions];
    for (name, (at, _)) in &terminal {
        let sub: usize = name[1..3].parse().unwrap_or(0);
        finished[sub] = finished[sub].max(at - t0);
    }
    let writes = operator_writes(
        &writes_before,
        &writes_after,
        &["remotecommands/status ", "secrets ", "events "],
    );
    let work = Work {
        commands: per_subscription as u64,
        reads_per_command: polls_honouring_retry_after(duration, retry_after as f64),
        duration,
    };
    Ok(FleetResult {
        subscriptions,
        per_subscription,
        bound: lower_bound(work, Budget::ARM),
        finished,
        succeeded: terminal.values().filter(|(_, ok)| *ok).count(),
        throttled: arm.throttled,
        duplicates: arm.duplicates(),
        arm,
        cpu_seconds: cpu,
        peak_rss_mib: rss,
        idle_rss_mib: idle_rss,
        cpu: cpu_after.since(&cpu_start),
        wall,
        writes,
    })
}
