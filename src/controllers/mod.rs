//! Controllers: glue between the Kubernetes API and ARM; they own status.

pub mod arm_errors;
pub mod arrivals;
pub mod conditions;
pub mod context;
pub mod events;
pub mod grants;
pub mod kubeconfig_export;
pub mod kubeconfig_export_set;
pub mod limits;
pub mod owned;
pub mod reason;
pub mod references;
pub mod remote_command;
pub mod remote_command_set;
pub mod selector;
pub mod service_account_tokens;
pub mod status;
pub mod turns;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ReflectHandle, Store};
use kube::runtime::{Controller, WatchStreamExt, predicates, reflector, watcher};
use serde::de::DeserializeOwned;

use crate::api::{KubeconfigExport, KubeconfigExportSet, RemoteCommand, RemoteCommandSet};
use crate::server::Probes;
use context::Context;
use reason::Failure;

/// How long the way out waits for each unwritten answer of ARM.
const FLUSH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the way out lets open ACI exec sessions run to their end (the chart's grace period,
/// 90 s, leaves room for it, the flush and the Lease hand-over).
const SESSION_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs both controllers until `shutdown` completes (SIGTERM, or the leader Lease was lost); then
/// they stop taking work and let running reconciles finish. Ready once every cache is synced.
///
/// `namespaces` empty: one watch of each kind over all namespaces. Otherwise one watch per listed
/// namespace, so the operator needs rights in those namespaces only (no cluster-wide list).
pub async fn run<S, F>(ctx: Arc<Context>, namespaces: Vec<String>, probes: Arc<Probes>, shutdown: S)
where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + Sync + 'static,
{
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    let config = kube::runtime::controller::Config::default()
        .concurrency(ctx.settings.max_concurrent_reconciles);
    let mut controllers = Vec::new();
    let mut command_stores = Vec::new();
    let mut export_stores = Vec::new();
    let mut set_stores = Vec::new();
    let mut export_set_stores = Vec::new();
    for scope in &scopes {
        let (commands, command_store, command_changes) =
            trigger::<RemoteCommand>(&ctx, scope, spec_or_reopened, slim_finished_run);
        let (exports, export_store, export_changes) =
            trigger::<KubeconfigExport>(&ctx, scope, predicates::generation, |_| {});
        command_stores.push(command_store.clone());
        // The fleet runs of this scope read their children from this cache.
        let commands_seen = command_store.clone();
        export_stores.push(export_store.clone());
        // The fleet exports of this scope read their children from this cache.
        let exports_seen = export_store.clone();
        // A command whose turn came (its namespace's places were taken) is woken through here.
        let (wakes, woken) = futures::channel::mpsc::unbounded();
        let (seen_by, woken_by) = (ctx.clone(), wakes.clone());
        let commands = commands.inspect(move |event| {
            if let Ok(rc) = event {
                remote_command::arrived(rc, &seen_by, &woken_by);
            }
        });
        let remote_commands = Controller::for_stream(commands, command_store)
            .reconcile_on(woken)
            .with_config(config.clone())
            .graceful_shutdown_on(shutdown())
            .run(
                move |rc, ctx| {
                    measured(
                        remote_command::CONTROLLER,
                        remote_command::reconcile(rc, ctx.clone(), wakes.clone()),
                        ctx,
                    )
                },
                remote_command::error_policy,
                ctx.clone(),
            )
            .for_each(|_| async {});
        let kubeconfig_exports = Controller::for_stream(exports, export_store)
            .with_config(config.clone())
            .graceful_shutdown_on(shutdown())
            .run(
                |kcx, ctx| {
                    measured(
                        kubeconfig_export::CONTROLLER,
                        kubeconfig_export::reconcile(kcx, ctx.clone()),
                        ctx,
                    )
                },
                kubeconfig_export::error_policy,
                ctx.clone(),
            )
            .for_each(|_| async {});
        let (sets, set_store, _) =
            trigger::<RemoteCommandSet>(&ctx, scope, predicates::generation, |_| {});
        set_stores.push(set_store.clone());
        let launched = Arc::new(remote_command_set::children::Launched::default());
        let remote_command_sets = Controller::for_stream(sets, set_store)
            .owns_shared_stream(command_changes)
            .with_config(config.clone().debounce(SET_DEBOUNCE))
            .graceful_shutdown_on(shutdown())
            .run(
                move |set, ctx| {
                    measured(
                        remote_command_set::CONTROLLER,
                        remote_command_set::reconcile(
                            set,
                            ctx.clone(),
                            commands_seen.clone(),
                            launched.clone(),
                        ),
                        ctx,
                    )
                },
                remote_command_set::error_policy,
                ctx.clone(),
            )
            .for_each(|_| async {});
        let (export_sets, export_set_store, _) =
            trigger::<KubeconfigExportSet>(&ctx, scope, predicates::generation, |_| {});
        export_set_stores.push(export_set_store.clone());
        let kubeconfig_export_sets = Controller::for_stream(export_sets, export_set_store)
            .owns_shared_stream(export_changes)
            .with_config(config.clone().debounce(SET_DEBOUNCE))
            .graceful_shutdown_on(shutdown())
            .run(
                move |set, ctx| {
                    measured(
                        kubeconfig_export_set::CONTROLLER,
                        kubeconfig_export_set::reconcile(set, ctx.clone(), exports_seen.clone()),
                        ctx,
                    )
                },
                kubeconfig_export_set::error_policy,
                ctx.clone(),
            )
            .for_each(|_| async {});
        controllers.push(futures::future::join4(
            remote_commands,
            kubeconfig_exports,
            remote_command_sets,
            kubeconfig_export_sets,
        ));
    }
    {
        let (stores, exports, throttle) = (
            command_stores.clone(),
            export_stores.clone(),
            ctx.azure.arm.throttle().clone(),
        );
        probes.set_gauges(Box::new(move || crate::metrics::StateGauges {
            phases: phases(&stores),
            buckets: throttle.levels(),
            exports: kubeconfig_export::gauges::count(
                exports.iter().flat_map(|s| s.state()),
                k8s_openapi::jiff::Timestamp::now(),
            ),
        }));
    }
    let stopping = shutdown();
    let ready = async {
        let synced = async {
            let commands =
                futures::future::join_all(command_stores.iter().map(|s| s.wait_until_ready()));
            let exports =
                futures::future::join_all(export_stores.iter().map(|s| s.wait_until_ready()));
            let sets = futures::future::join_all(set_stores.iter().map(|s| s.wait_until_ready()));
            let export_sets =
                futures::future::join_all(export_set_stores.iter().map(|s| s.wait_until_ready()));
            let (a, b, c, d) = futures::join!(commands, exports, sets, export_sets);
            a.iter().chain(&b).chain(&c).chain(&d).all(Result::is_ok)
        };
        tokio::select! {
            true = synced => {
                tracing::info!("caches synced; ready");
                probes.set_ready(true);
            },
            _ = stopping => {}
        }
    };
    futures::join!(futures::future::join_all(controllers), ready);
    probes.set_ready(false);
    // An ACI exec session runs in a task of its own: a leader still holding the Lease lets open
    // sessions end (a rolling update would otherwise cut them: SessionInterrupted) before it
    // writes what remains and hands the Lease over.
    if ctx.tenure.holds() {
        let open = ctx.journal.sessions_closed(SESSION_PATIENCE).await;
        if open > 0 {
            tracing::warn!(open, "exec sessions still open are cut on the way out");
        }
    }
    // No reconcile runs any more; ARM's answers still only in memory go to the API server before
    // the Lease is handed over (the chart's grace period is 90 s).
    remote_command::dispatch::flush(&ctx, FLUSH_PATIENCE).await;
}

/// Objects per page of the initial list: a page of objects near the API server's size limit must
/// fit in memory beside everything else.
const LIST_PAGE_SIZE: u32 = 25;

/// Changes of a store not yet taken by the controllers that follow them (the reflector waits when
/// it is full).
const CHANGES_BUFFER: usize = 1024;

/// A fleet run's children finishing together wake it once.
const SET_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(500);

/// A store and the watch stream that feeds it, and every change of the store as it is made. Only
/// spec changes (generation) trigger a reconcile of the kind itself (as `changed` sees them); our
/// own status writes don't, and polling and refreshes are driven by requeues (which honour ARM's
/// Retry-After). The changes wake the fleet kinds that own the objects: read after the store was
/// written, so an owner never reads a child older than the change that woke it.
fn trigger<K>(
    ctx: &Context,
    namespace: &Option<String>,
    changed: fn(&K) -> Option<u64>,
    slim: fn(&mut K),
) -> (
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    Store<K>,
    ReflectHandle<K>,
)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let (reader, writer) = reflector::store_shared(CHANGES_BUFFER);
    let changes = writer.subscribe().expect("a shared store has subscribers");
    // The cache keeps what reconciles read: no managedFields, labels or annotations (a tenant may
    // fill them up to the API server's object limit; status is written with server-side apply,
    // never by sending the cached object back).
    let config = watcher::Config::default().page_size(LIST_PAGE_SIZE);
    let watch = watcher(api, config).modify(move |obj| {
        let meta = obj.meta_mut();
        meta.managed_fields = None;
        meta.labels = None;
        meta.annotations = None;
        slim(obj);
    });
    let stream = reflector(writer, watch)
        .default_backoff()
        .applied_objects()
        .predicate_filter(changed, Default::default());
    (stream, reader, changes)
}

/// What makes a RemoteCommand reconcile from the watch: a spec change (generation), or a finished
/// run reopened — a paused replica wrote ARM's late answer over a `DispatchInterrupted` verdict
/// that the leader reached (docs/exactly-once.md), and the leader must follow the command now. The
/// other way (a run finishing) costs one reconcile that reads only the cache.
fn spec_or_reopened(rc: &RemoteCommand) -> Option<u64> {
    let generation = u64::try_from(rc.metadata.generation?).unwrap_or_default();
    let finished = rc
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(|p| p.is_terminal());
    Some(generation << 1 | u64::from(finished))
}

/// A finished run's status, as far as the cache needs it: what decides whether the run is current
/// and when its TTL ends. Its output tail, message and conditions are never read from the cache
/// (a new run starts from a fresh read), and with thousands of finished runs they are most of the
/// operator's memory at rest.
fn slim_finished_run(rc: &mut RemoteCommand) {
    if let Some(status) = rc.status.as_mut()
        && status.phase.is_some_and(|p| p.is_terminal())
    {
        status.output_tail = None;
        status.message = None;
        status.conditions = Vec::new();
    }
}

/// Times a reconcile and counts it (with the failure reason when it failed).
async fn measured(
    controller: &'static str,
    reconcile: impl Future<Output = Result<Action, Failure>>,
    ctx: Arc<Context>,
) -> Result<Action, Failure> {
    let start = Instant::now();
    let result = reconcile.await;
    let reason = result.as_ref().err().map(|f| f.reason.as_str());
    ctx.metrics.reconciled(controller, start.elapsed(), reason);
    result
}

/// RemoteCommands in the caches by phase (`Running` = in flight).
fn phases(stores: &[Store<RemoteCommand>]) -> Vec<(String, i64)> {
    let mut counts = std::collections::BTreeMap::<String, i64>::new();
    for rc in stores.iter().flat_map(|s| s.state()) {
        let phase = rc
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "Pending".into());
        *counts.entry(phase).or_default() += 1;
    }
    counts.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;

    #[test]
    fn a_reopened_run_triggers_a_reconcile_and_a_status_write_alone_does_not() {
        let mut rc: RemoteCommand = serde_json::from_value(serde_json::json!({
            "apiVersion": "kubeinvoke.io/v1alpha1", "kind": "RemoteCommand",
            "metadata": {"name": "x", "generation": 3},
            "spec": {"target": {"aks": {"resourceId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/c"}}, "command": "true"},
        }))
        .unwrap();
        let mut at = |phase: Phase, command_id: Option<&str>| {
            let s = rc.status.get_or_insert_with(Default::default);
            s.phase = Some(phase);
            s.command_id = command_id.map(str::to_string);
            spec_or_reopened(&rc)
        };
        let dispatching = at(Phase::Running, None);
        assert_eq!(dispatching, at(Phase::Running, Some("abc")));
        let interrupted = at(Phase::Failed, None);
        assert_ne!(interrupted, dispatching);
        assert_ne!(at(Phase::Running, Some("abc")), interrupted);
    }
}
