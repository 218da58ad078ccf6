//! Scenario F: what a KubeconfigExport refresh costs the management cluster's API server. Exports
//! of an Entra-managed AKS cluster with `authentication: Token` get tokens that expire within a
//! minute, so each is refreshed (at 90% of the token's lifetime) shortly after its first export;
//! the API server's own write counters are read before and after one such round.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use kubeinvoke::api::KubeconfigExport;
use serde_json::json;

use crate::fleet::{ApiServerMetrics, operator_writes};
use crate::procs::{Emulator, Error, Operator};
use crate::scenario::{SUBSCRIPTION, namespace, world_with};

/// Lifetime of the tokens the emulator issues in this scenario: a refresh is due after ~31 s.
pub const TOKEN_LIFETIME_SECONDS: u64 = 35;

const CLUSTER: &str = "aks-aad";

/// The emulator's world: one Entra-managed AKS cluster.
pub fn world() -> String {
    world_with(&format!("{{name: {CLUSTER}, aadManaged: true}}"))
}

#[derive(Debug, Default, Clone)]
pub struct RefreshResult {
    pub exports: usize,
    /// API server writes per export of its first export, by `resource[/subresource] VERB`.
    pub first: BTreeMap<String, f64>,
    /// API server writes per refresh, by `resource[/subresource] VERB`.
    pub refresh: BTreeMap<String, f64>,
}

impl RefreshResult {
    pub fn first_total(&self) -> f64 {
        self.first.values().sum()
    }
    pub fn refresh_total(&self) -> f64 {
        self.refresh.values().sum()
    }
}

/// `n` exports: their first export, then one round of refreshes, with the writes of each.
pub async fn refreshes(
    client: &Client,
    metrics: &ApiServerMetrics,
    emulator: &Emulator,
    operator_bin: &Path,
    kubeconfig: &Path,
    work_dir: &Path,
    n: usize,
) -> Result<RefreshResult, Error> {
    let ns = format!("bench-f-{}", std::process::id());
    namespace(client, &ns).await?;
    let api: Api<KubeconfigExport> = Api::namespaced(client.clone(), &ns);
    let operator = Operator::ready(operator_bin, kubeconfig, emulator, &ns, &[], work_dir).await?;

    let before = metrics.writes().await?;
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("kcx-{i:04}");
                let spec = json!({
                    "source": {"aks": {"resourceId": cluster_id(), "role": "User"}},
                    "authentication": "Token",
                    "secret": {"name": format!("{name}-kubeconfig"), "format": "Kubeconfig"},
                });
                let kcx = KubeconfigExport::new(&name, serde_json::from_value(spec)?);
                api.create(&PostParams::default(), &kcx).await?;
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let first_done = wait_refreshed(&api, n, &BTreeMap::new(), Duration::from_secs(120)).await?;
    let exported = metrics.writes().await?;
    wait_refreshed(
        &api,
        n,
        &first_done,
        Duration::from_secs(TOKEN_LIFETIME_SECONDS * 3),
    )
    .await?;
    let refreshed = metrics.writes().await?;
    drop(operator);
    Ok(RefreshResult {
        exports: n,
        first: per_export(&before, &exported, n),
        refresh: per_export(&exported, &refreshed, n),
    })
}

fn cluster_id() -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}"
    )
}

/// Waits until all `n` exports are Exported with a `lastRefreshTime` other than the one in
/// `previous` (name → time); returns the new times.
async fn wait_refreshed(
    api: &Api<KubeconfigExport>,
    n: usize,
    previous: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<BTreeMap<String, String>, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let done: BTreeMap<String, String> = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|k| {
                let name = k.metadata.name.clone()?;
                let s = k.status?;
                let time = s.last_refresh_time?.0.to_string();
                (s.reason.as_deref() == Some("Exported") && previous.get(&name) != Some(&time))
                    .then_some((name, time))
            })
            .collect();
        if done.len() >= n {
            return Ok(done);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "scenario F: only {} of {n} exports were (re)exported within {} s",
                done.len(),
                timeout.as_secs()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The operator's writes between two snapshots, per export.
fn per_export(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    n: usize,
) -> BTreeMap<String, f64> {
    operator_writes(
        before,
        after,
        &["kubeconfigexports/status ", "secrets ", "events "],
    )
    .into_iter()
    .map(|(k, d)| (k, d as f64 / n.max(1) as f64))
    .collect()
}
