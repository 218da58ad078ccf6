//! Controllers: glue between the Kubernetes API and ARM; they own status.

pub mod arm_errors;
pub mod conditions;
pub mod context;
pub mod kubeconfig_export;
pub mod reason;
pub mod references;
pub mod remote_command;

use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{Controller, WatchStreamExt, predicates, reflector, watcher};

use crate::api::{KubeconfigExport, RemoteCommand};
use context::Context;

/// Runs the controllers until SIGTERM/SIGINT.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let rc_api: Api<RemoteCommand> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    // Only spec changes (generation) trigger a reconcile from the watch; our own status writes
    // don't, and polling is driven by requeues that honour ARM's Retry-After.
    let (reader, writer) = reflector::store();
    let commands = reflector(writer, watcher(rc_api, watcher::Config::default()))
        .default_backoff()
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let remote_commands = Controller::for_stream(commands, reader)
        .shutdown_on_signal()
        .run(
            remote_command::reconcile,
            remote_command::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "remote command controller");
            }
        });

    // Same shape: spec changes start a fetch; refreshes are requeues at `nextRefreshTime`.
    let kcx_api: Api<KubeconfigExport> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let (reader, writer) = reflector::store();
    let exports = reflector(writer, watcher(kcx_api, watcher::Config::default()))
        .default_backoff()
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let kubeconfig_exports = Controller::for_stream(exports, reader)
        .shutdown_on_signal()
        .run(
            kubeconfig_export::reconcile,
            kubeconfig_export::error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "kubeconfig export controller");
            }
        });

    futures::join!(remote_commands, kubeconfig_exports);
}
