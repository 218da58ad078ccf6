//! Scenario G, second part: one KubeconfigExportSet over the same fleet. How long until every
//! selected cluster's kubeconfig is in its Secret, and then, with nothing changing at ARM, what one
//! round of refreshes (every export refreshed once, a listing or so of the set) writes to the API
//! server: the goal is no Secret write at all.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use kubeinvoke::api::{KubeconfigExport, KubeconfigExportSet};
use serde_json::{Value, json};

use crate::fleet::{ApiServerMetrics, operator_writes};
use crate::fleet_set::{FleetShape, credential_ref, namespace, selector};
use crate::follow::follow;
use crate::procs::{Emulator, Error, Operator, cpu_seconds, peak_rss_mib};
use crate::scenario::{now_secs, parse_time};
use crate::stats::Budget;

/// What the operator writes for a set of exports, by key prefix of [`ApiServerMetrics::writes`].
const KINDS: [&str; 6] = [
    "kubeconfigexports ",
    "kubeconfigexports/status ",
    "kubeconfigexportsets ",
    "kubeconfigexportsets/status ",
    "secrets ",
    "events ",
];

#[derive(Debug, Default, Clone)]
pub struct ExportSetResult {
    /// `template.refreshInterval` and `discoveryInterval` of the measurement.
    pub interval: String,
    pub clusters: usize,
    pub ready: usize,
    /// Set created → the last page of its first listing answered.
    pub discovery_seconds: f64,
    /// Set created → its status first counts the clusters (written once it made every export).
    pub counted_seconds: f64,
    /// When ARM's listings began, seconds after the set was created (one per discovery).
    pub listings: Vec<f64>,
    /// Set created → every selected cluster's export ready.
    pub exported_seconds: f64,
    pub export_throttled: u64,
    pub export_cpu_seconds: f64,
    /// Writes until every export was ready, by `resource[/subresource] VERB`.
    pub export_writes: BTreeMap<String, u64>,
    /// At rest: from the moment all were ready until each export refreshed once more and the set
    /// listed ARM again (or three intervals passed).
    pub rest_seconds: f64,
    pub refreshed: usize,
    pub rest_writes: BTreeMap<String, u64>,
    /// ARM requests during the round, by operation.
    pub rest_arm: BTreeMap<String, u64>,
    pub rest_cpu_seconds: f64,
    pub peak_rss_mib: f64,
}

impl ExportSetResult {
    pub fn rest_secret_writes(&self) -> u64 {
        self.rest_writes
            .iter()
            .filter(|(k, _)| k.starts_with("secrets "))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Listings of the fleet in the emulator's log: when each began and when its last page was
/// answered (pages less than 5 s apart are one listing).
async fn listings(emulator: &Emulator) -> Result<Vec<(f64, f64)>, Error> {
    let requests = emulator.get("requests").await?;
    let mut times: Vec<f64> = requests
        .as_array()
        .or_else(|| requests["requests"].as_array())
        .into_iter()
        .flatten()
        .filter(|e| e["operation"] == "aks.list")
        .filter_map(|e| e["time"].as_str().and_then(parse_time))
        .collect();
    times.sort_by(f64::total_cmp);
    let mut out: Vec<(f64, f64)> = Vec::new();
    for t in times {
        match out.last_mut() {
            Some((_, last)) if t - *last < 5.0 => *last = t,
            _ => out.push((t, t)),
        }
    }
    Ok(out)
}

fn requests_by_op(counters: &Value) -> BTreeMap<String, u64> {
    counters["requests"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(op, n)| (op.clone(), n.as_u64().unwrap_or(0)))
        .collect()
}

/// Each export's `lastRefreshTime` (as written), by name.
async fn refresh_times(api: &Api<KubeconfigExport>) -> Result<HashMap<String, String>, Error> {
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|k| {
            let t = k.status.as_ref()?.last_refresh_time.as_ref()?.0.to_string();
            Some((k.name_any(), t))
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: &Client,
    metrics: &ApiServerMetrics,
    emulator: &Emulator,
    operator_bin: &Path,
    kubeconfig: &Path,
    work_dir: &Path,
    shape: &FleetShape,
    interval: &str,
    timeout: Duration,
) -> Result<ExportSetResult, Error> {
    let ns = format!("bench-g-export-{}", std::process::id());
    namespace(client, &ns).await?;
    emulator.reset().await?;
    let flags = Budget::ARM.scaled(0.9).operator_flags();
    let operator =
        Operator::ready(operator_bin, kubeconfig, emulator, &ns, &flags, work_dir).await?;
    let cpu_before = cpu_seconds(operator.pid())?;

    let sets: Api<KubeconfigExportSet> = Api::namespaced(client.clone(), &ns);
    let exports: Api<KubeconfigExport> = Api::namespaced(client.clone(), &ns);
    let wanted = shape.targets() as i32;
    // (discovered at, all ready at)
    let seen: Arc<Mutex<(Option<f64>, Option<f64>)>> = Default::default();
    let watch = {
        let seen = seen.clone();
        follow(sets.clone(), move |set, at| {
            let Some(status) = set.status.as_ref() else {
                return;
            };
            let mut seen = seen.lock().expect("lock");
            if status.clusters > 0 && seen.0.is_none() {
                seen.0 = Some(at);
            }
            if status.clusters == wanted && status.ready == wanted && seen.1.is_none() {
                seen.1 = Some(at);
            }
        })
    };

    let writes_before = metrics.writes().await?;
    let set: KubeconfigExportSet = serde_json::from_value(json!({
        "apiVersion": "kubeinvoke.io/v1alpha1",
        "kind": "KubeconfigExportSet",
        "metadata": {"name": "fleet"},
        "spec": {
            "selector": selector(shape.subscriptions),
            "template": {"role": "User", "refreshInterval": interval, "credentialRef": credential_ref()},
            "discoveryInterval": interval,
        },
    }))?;
    let started = Instant::now();
    let t0 = now_secs();
    sets.create(&PostParams::default(), &set).await?;
    let (discovered, exported) = loop {
        if let (d, Some(e)) = *seen.lock().expect("lock") {
            break (d.unwrap_or(e), e);
        }
        if started.elapsed() > timeout {
            watch.abort();
            let status = sets.get("fleet").await?.status.unwrap_or_default();
            return Err(format!(
                "scenario G (KubeconfigExportSet): {} of {} clusters ready ({} held) after {timeout:?}; operator log {}",
                status.ready,
                wanted,
                status.clusters,
                operator.log_file.display()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    watch.abort();
    let writes_exported = metrics.writes().await?;
    let cpu_exported = cpu_seconds(operator.pid())?;
    let counters_exported = emulator.get("counters").await?;
    let status = sets.get("fleet").await?.status.unwrap_or_default();

    // At rest: nothing changes at ARM. Until every export refreshed once more and the set listed
    // ARM again, or three intervals passed.
    let period = kubeinvoke::kubeconfig::parse_refresh_interval(interval)
        .map_err(|e| format!("--set-export-interval {interval:?}: {e}"))?;
    let round_start = Instant::now();
    let before = refresh_times(&exports).await?;
    let lists_before = requests_by_op(&counters_exported).get("aks.list").copied();
    let refreshed = loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = refresh_times(&exports).await?;
        let refreshed = now
            .iter()
            .filter(|(name, t)| before.get(*name).is_some_and(|b| b != *t))
            .count();
        let listed = requests_by_op(&emulator.get("counters").await?)
            .get("aks.list")
            .copied()
            > lists_before;
        if (refreshed >= before.len() && listed) || round_start.elapsed() > period * 3 {
            break refreshed;
        }
    };
    let rest_seconds = round_start.elapsed().as_secs_f64();
    let writes_rest = metrics.writes().await?;
    let cpu_rest = cpu_seconds(operator.pid())?;
    let counters_rest = emulator.get("counters").await?;
    let rss = peak_rss_mib(operator.pid())?;
    drop(operator);
    let listings = listings(emulator).await?;

    let (ops_exported, ops_rest) = (
        requests_by_op(&counters_exported),
        requests_by_op(&counters_rest),
    );
    let rest_arm = ops_rest
        .iter()
        .map(|(op, n)| {
            (
                op.clone(),
                n.saturating_sub(ops_exported.get(op).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let mut export_writes = operator_writes(&writes_before, &writes_exported, &KINDS);
    // The driver's own create of the set.
    if let Some(n) = export_writes.get_mut("kubeconfigexportsets POST") {
        *n = n.saturating_sub(1);
    }
    export_writes.retain(|_, n| *n > 0);
    Ok(ExportSetResult {
        interval: interval.to_string(),
        clusters: status.clusters.max(0) as usize,
        ready: status.ready.max(0) as usize,
        discovery_seconds: listings
            .first()
            .map(|(_, end)| end - t0)
            .unwrap_or(f64::NAN),
        counted_seconds: discovered - t0,
        listings: listings.iter().map(|(start, _)| start - t0).collect(),
        exported_seconds: exported - t0,
        export_throttled: counters_exported["throttled429"].as_u64().unwrap_or(0),
        export_cpu_seconds: cpu_exported - cpu_before,
        export_writes,
        rest_seconds,
        refreshed,
        rest_writes: operator_writes(&writes_exported, &writes_rest, &KINDS),
        rest_arm,
        rest_cpu_seconds: cpu_rest - cpu_exported,
        peak_rss_mib: rss,
    })
}
