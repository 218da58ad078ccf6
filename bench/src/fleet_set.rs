//! Scenario G: one RemoteCommandSet over a fleet found by a selector — `clusters` tagged AKS
//! clusters in each of `subscriptions` subscriptions (next to untagged ones the selector must skip),
//! run once under a `maxConcurrency` limit and once without one. The operator lists ARM, freezes the
//! targets and launches one child RemoteCommand per cluster: how close does it stay to what ARM and
//! the limit allow, and what does that cost it and the management cluster's API server?

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use kubeinvoke::api::{RemoteCommand, RemoteCommandSet};
use serde_json::{Value, json};

use crate::fleet::{ApiServerMetrics, operator_writes, subscription};
use crate::follow::follow;
use crate::procs::{Emulator, Error, Operator, cpu_seconds, peak_rss_mib};
use crate::scenario::{ArmView, TENANT, now_secs, parse_time};
use crate::stats::{Budget, Work, lower_bound, polls_honouring_retry_after};

/// The one principal of the set's credential: a set has one `credentialRef`, for the listing and
/// every target. ARM's buckets are per (subscription, principal), so each subscription still has a
/// budget of its own, as each had in scenario D.
pub const CLIENT_ID: &str = "33333333-3333-3333-3333-300000000001";
const CLIENT_SECRET: &str = "fleet-set-secret";
const CREDENTIAL: &str = "fleet-credentials";
/// Clusters per subscription the selector must skip (tagged `env: dev`).
pub const UNSELECTED_PER_SUBSCRIPTION: usize = 20;

/// The selected clusters of subscription `s` are `s{s:02}-aks-{i:03}`: names unique across the
/// fleet, so Secrets named after them (`{name}-kubeconfig`) never collide.
fn cluster_sets(s: usize, clusters: usize, duration: f64) -> String {
    format!(
        "          - {{count: {clusters}, namePattern: \"s{s:02}-aks-{{i:03}}\", tags: {{env: prod}}, commandDuration: {duration}}}\n          - {{count: {UNSELECTED_PER_SUBSCRIPTION}, namePattern: \"s{s:02}-dev-{{i:03}}\", tags: {{env: dev}}, commandDuration: {duration}}}\n"
    )
}

/// The emulator's world: one principal with a role on `subscriptions` subscriptions, each with
/// `clusters` AKS clusters tagged `env: prod` and some tagged `env: dev`; ARM's list paging.
pub fn world(subscriptions: usize, clusters: usize, duration: f64) -> String {
    let ids: Vec<String> = (0..subscriptions)
        .map(|s| format!("\"{}\"", subscription(s)))
        .collect();
    let mut w = format!(
        "tenants: [{{id: \"{TENANT}\"}}]\nprincipals:\n  - {{tenantId: \"{TENANT}\", clientId: \"{CLIENT_ID}\", clientSecret: \"{CLIENT_SECRET}\", subscriptions: [{}]}}\nsubscriptions:\n",
        ids.join(", ")
    );
    for s in 0..subscriptions {
        w.push_str(&format!(
            "  - id: \"{}\"\n    tenantId: \"{TENANT}\"\n    resourceGroups:\n      - name: fleet\n        managedClusterSets:\n{}",
            subscription(s),
            cluster_sets(s, clusters, duration)
        ));
    }
    w
}

/// The set's selector over the whole fleet (the same for the KubeconfigExportSet).
pub fn selector(subscriptions: usize) -> Value {
    let ids: Vec<String> = (0..subscriptions).map(subscription).collect();
    json!({"subscriptions": ids, "matchTags": {"env": "prod"}})
}

/// A namespace with the set principal's credential Secret.
pub async fn namespace(client: &Client, ns: &str) -> Result<(), Error> {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": CREDENTIAL},
        "stringData": {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": CLIENT_SECRET}
    }))?;
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

pub fn credential_ref() -> Value {
    json!({"name": CREDENTIAL})
}

/// The shape of the fleet, shared by every run of G.
#[derive(Debug, Default, Clone)]
pub struct FleetShape {
    pub subscriptions: usize,
    /// Selected clusters per subscription.
    pub clusters: usize,
    pub duration: f64,
    pub retry_after: f64,
    /// ARM's listing page size (the emulator's default).
    pub page_size: usize,
}

impl FleetShape {
    pub fn targets(&self) -> usize {
        self.subscriptions * self.clusters
    }

    /// ARM's lower bound for one subscription's share: its clusters' runCommand POSTs and polls
    /// through its buckets (the listing's pages, one read per page, are left out: a few reads).
    pub fn arm_bound(&self) -> f64 {
        let work = Work {
            commands: self.clusters as u64,
            reads_per_command: polls_honouring_retry_after(self.duration, self.retry_after),
            duration: self.duration,
        };
        lower_bound(work, Budget::ARM)
    }

    /// What `limit` commands at once allow: each slot runs its share one after the other.
    pub fn concurrency_bound(&self, limit: usize) -> f64 {
        self.targets().div_ceil(limit.max(1)) as f64 * self.duration
    }

    /// Listing reads per subscription (its clusters of both tags, a page each `page_size`).
    pub fn pages(&self) -> usize {
        (self.clusters + UNSELECTED_PER_SUBSCRIPTION).div_ceil(self.page_size.max(1))
    }
}

/// One fleet run of G.
#[derive(Debug, Default, Clone)]
pub struct SetRun {
    /// `spec.maxConcurrency` as written (`50`, `100%`).
    pub max_concurrency: String,
    /// What it allows at once for this fleet.
    pub limit: usize,
    pub targets: usize,
    /// Set created → its status lists the resolved targets.
    pub discovery_seconds: f64,
    /// Set created → its status has a completion time.
    pub seconds: f64,
    /// Set created → the last child of each subscription in a terminal phase.
    pub finished: Vec<f64>,
    pub succeeded: usize,
    pub failed: usize,
    pub reason: String,
    pub throttled: u64,
    /// runCommand POSTs ARM accepted for a cluster it had accepted one for already.
    pub duplicates: u64,
    /// Clusters ARM accepted a runCommand POST for.
    pub dispatched: usize,
    /// Set created → ARM accepted the first / the last runCommand POST.
    pub first_dispatch: f64,
    pub last_dispatch: f64,
    /// The most commands running at ARM at once (the emulator's `commandsRunningPeak`).
    pub running_peak: u64,
    pub list_requests: u64,
    pub arm_requests: u64,
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
    /// The operator's writes to the API server, by `resource[/subresource] VERB`.
    pub writes: BTreeMap<String, u64>,
}

impl SetRun {
    pub fn slowest(&self) -> f64 {
        self.finished.iter().copied().fold(0.0, f64::max)
    }
    pub fn writes_per_target(&self) -> f64 {
        self.writes.values().sum::<u64>() as f64 / self.targets.max(1) as f64
    }
    pub fn cpu_per_target(&self) -> f64 {
        self.cpu_seconds / self.targets.max(1) as f64
    }
}

/// `maxConcurrency` for `targets` targets, as the set reads it: a number, or a percentage (at
/// least one).
pub fn concurrency_limit(spec: &str, targets: usize) -> usize {
    match spec.strip_suffix('%') {
        Some(p) => {
            let p: usize = p.trim().parse().unwrap_or(100);
            (targets * p).div_ceil(100).max(1)
        }
        None => spec.trim().parse().unwrap_or(targets),
    }
}

fn int_or_string(spec: &str) -> Value {
    match spec.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(spec),
    }
}

/// Accepted runCommand POSTs per cluster (lower-cased path), and the times of the first and the
/// last, from the emulator's request log.
async fn dispatches_per_cluster(
    emulator: &Emulator,
) -> Result<(BTreeMap<String, u64>, f64, f64), Error> {
    let requests = emulator.get("requests").await?;
    let entries = requests
        .as_array()
        .or_else(|| requests["requests"].as_array())
        .cloned()
        .unwrap_or_default();
    let mut counts = BTreeMap::new();
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    for e in entries {
        if e["operation"] == "aks.runCommand" && e["status"] == 202 {
            let path = e["path"].as_str().unwrap_or_default().to_ascii_lowercase();
            *counts.entry(path).or_default() += 1;
            if let Some(t) = e["time"].as_str().and_then(parse_time) {
                first = first.min(t);
                last = last.max(t);
            }
        }
    }
    Ok((counts, first, last))
}

/// The subscription index of an ARM resource ID of the fleet.
fn subscription_of(resource_id: &str, index: &HashMap<String, usize>) -> Option<usize> {
    let id = resource_id
        .split('/')
        .skip_while(|p| !p.eq_ignore_ascii_case("subscriptions"))
        .nth(1)?;
    index.get(&id.to_ascii_lowercase()).copied()
}

#[derive(Default)]
struct Seen {
    discovered: Option<f64>,
    completed: Option<(f64, RemoteCommandSet)>,
    /// Child name → (terminal at, subscription).
    children: HashMap<String, (f64, usize)>,
}

/// Scenario G's figures.
#[derive(Debug, Default, Clone)]
pub struct SetResult {
    pub shape: FleetShape,
    pub runs: Vec<SetRun>,
    /// The KubeconfigExportSet over the same fleet.
    pub exports: Option<crate::export_set::ExportSetResult>,
}

/// One run: a fresh namespace and operator, the set created, watched until its run completed.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: &Client,
    metrics: &ApiServerMetrics,
    emulator: &Emulator,
    operator_bin: &Path,
    kubeconfig: &Path,
    work_dir: &Path,
    shape: &FleetShape,
    max_concurrency: &str,
    timeout: Duration,
) -> Result<SetRun, Error> {
    let tag: String = max_concurrency
        .chars()
        .map(|c| if c.is_ascii_digit() { c } else { 'p' })
        .collect();
    let ns = format!("bench-g-{tag}-{}", std::process::id());
    namespace(client, &ns).await?;
    emulator.reset().await?;
    let flags = Budget::ARM.scaled(0.9).operator_flags();
    let operator =
        Operator::ready(operator_bin, kubeconfig, emulator, &ns, &flags, work_dir).await?;
    let cpu_before = cpu_seconds(operator.pid())?;

    let index: HashMap<String, usize> = (0..shape.subscriptions)
        .map(|s| (subscription(s).to_ascii_lowercase(), s))
        .collect();
    let seen: Arc<Mutex<Seen>> = Default::default();
    let sets: Api<RemoteCommandSet> = Api::namespaced(client.clone(), &ns);
    let commands: Api<RemoteCommand> = Api::namespaced(client.clone(), &ns);
    let watch_set = {
        let seen = seen.clone();
        follow(sets.clone(), move |set, at| {
            let Some(status) = set.status.as_ref() else {
                return;
            };
            let mut seen = seen.lock().expect("lock");
            if status.target_count > 0 && seen.discovered.is_none() {
                seen.discovered = Some(at);
            }
            if status.completion_time.is_some() && seen.completed.is_none() {
                seen.completed = Some((at, set.clone()));
            }
        })
    };
    let watch_children = {
        let (seen, index) = (seen.clone(), index.clone());
        follow(commands, move |rc, at| {
            if !rc
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| p.is_terminal())
            {
                return;
            }
            let target = rc.spec.target.aks.as_ref().map(|a| a.resource_id.as_str());
            let sub = target.and_then(|t| subscription_of(t, &index)).unwrap_or(0);
            seen.lock()
                .expect("lock")
                .children
                .entry(rc.name_any())
                .or_insert((at, sub));
        })
    };

    let writes_before = metrics.writes().await?;
    let set: RemoteCommandSet = serde_json::from_value(json!({
        "apiVersion": "kubeinvoke.io/v1alpha1",
        "kind": "RemoteCommandSet",
        "metadata": {"name": "fleet"},
        "spec": {
            "template": {"command": "echo fleet-g", "credentialRef": credential_ref()},
            "targets": {"selector": selector(shape.subscriptions)},
            "maxConcurrency": int_or_string(max_concurrency),
        },
    }))?;
    let started = Instant::now();
    let t0 = now_secs();
    sets.create(&PostParams::default(), &set).await?;
    let completed = loop {
        if let Some(done) = seen.lock().expect("lock").completed.clone() {
            break done;
        }
        if started.elapsed() > timeout {
            watch_set.abort();
            watch_children.abort();
            return Err(format!(
                "scenario G (maxConcurrency {max_concurrency}): the set's run did not complete within {timeout:?}; operator log {}",
                operator.log_file.display()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The set completes once its cache has every child terminal; the children's watch may be a
    // moment behind the set's.
    let targets = completed.1.status.clone().unwrap_or_default().target_count as usize;
    let settle = Instant::now();
    while seen.lock().expect("lock").children.len() < targets
        && settle.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch_set.abort();
    watch_children.abort();
    let cpu = cpu_seconds(operator.pid())? - cpu_before;
    let rss = peak_rss_mib(operator.pid())?;
    drop(operator);
    let writes_after = metrics.writes().await?;
    let arm = ArmView::read(emulator).await?;
    let counters = emulator.get("counters").await?;
    let (per_cluster, first_dispatch, last_dispatch) = dispatches_per_cluster(emulator).await?;

    let seen = seen.lock().expect("lock");
    let mut finished = vec![0.0f64; shape.subscriptions];
    for (at, sub) in seen.children.values() {
        finished[*sub] = finished[*sub].max(at - t0);
    }
    let mut writes = operator_writes(
        &writes_before,
        &writes_after,
        &[
            "remotecommands ",
            "remotecommands/status ",
            "remotecommandsets ",
            "remotecommandsets/status ",
            "secrets ",
            "events ",
        ],
    );
    // The driver's own create of the set.
    if let Some(n) = writes.get_mut("remotecommandsets POST") {
        *n = n.saturating_sub(1);
    }
    writes.retain(|_, n| *n > 0);
    let status = completed.1.status.clone().unwrap_or_default();
    Ok(SetRun {
        max_concurrency: max_concurrency.to_string(),
        limit: concurrency_limit(max_concurrency, targets),
        targets,
        discovery_seconds: seen.discovered.map(|t| t - t0).unwrap_or(f64::NAN),
        seconds: completed.0 - t0,
        finished,
        succeeded: status.succeeded.max(0) as usize,
        failed: status.failed.max(0) as usize,
        reason: status.reason.unwrap_or_default(),
        throttled: arm.throttled,
        duplicates: per_cluster.values().map(|n| n.saturating_sub(1)).sum(),
        dispatched: per_cluster.len(),
        first_dispatch: first_dispatch - t0,
        last_dispatch: last_dispatch - t0,
        running_peak: counters["commandsRunningPeak"].as_u64().unwrap_or(0),
        list_requests: counters["requests"]["aks.list"].as_u64().unwrap_or(0),
        arm_requests: arm.arm_requests(),
        cpu_seconds: cpu,
        peak_rss_mib: rss,
        writes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_as_number_or_percentage() {
        assert_eq!(concurrency_limit("50", 500), 50);
        assert_eq!(concurrency_limit("100%", 500), 500);
        assert_eq!(concurrency_limit("25%", 12), 3);
        assert_eq!(concurrency_limit("1%", 10), 1);
    }

    #[test]
    fn bounds_of_fifty_clusters_per_subscription() {
        let shape = FleetShape {
            subscriptions: 10,
            clusters: 50,
            duration: 2.0,
            retry_after: 1.0,
            page_size: 100,
        };
        // 50 POSTs and 100 polls fit in the bursts: the commands' own duration is the bound.
        assert_eq!(shape.arm_bound(), 2.0);
        // 50 at once: ten rounds of 2 s.
        assert_eq!(shape.concurrency_bound(50), 20.0);
        assert_eq!(shape.concurrency_bound(500), 2.0);
        assert_eq!(shape.pages(), 1);
    }

    #[test]
    fn subscription_from_resource_id() {
        let index: HashMap<String, usize> = [(subscription(3).to_ascii_lowercase(), 3)].into();
        let id = format!(
            "/subscriptions/{}/resourceGroups/fleet/providers/Microsoft.ContainerService/managedClusters/s03-aks-001",
            subscription(3).to_uppercase()
        );
        assert_eq!(subscription_of(&id, &index), Some(3));
        assert_eq!(subscription_of("/resourceGroups/x", &index), None);
    }
}
