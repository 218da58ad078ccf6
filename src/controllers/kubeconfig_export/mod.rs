//! The KubeconfigExport controller: fetches a cluster's kubeconfig through ARM, keeps it in a
//! Secret in its consumer's format, and fetches it again every `refreshInterval` or before the
//! credentials expire. The Secret is written only when its content changes.

mod children;
mod fetch;
pub mod gauges;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::context::Context;
use super::reason::{Failure, Reason};
use crate::api::kubeconfig_export::{
    DEFAULT_REFRESH_INTERVAL, KubeconfigExport, KubeconfigExportStatus,
};
use crate::kubeconfig::{
    RenderContext, content_hash, next_refresh, parse_refresh_interval, render,
};
use children::SecretWrite;
use status::Export;

/// One step for `kcx`: nothing until the next fetch is due, else fetch, write the Secret when its
/// content changed, and record the outcome.
pub async fn reconcile(kcx: Arc<KubeconfigExport>, ctx: Arc<Context>) -> Result<Action, Failure> {
    if kcx.metadata.deletion_timestamp.is_some() {
        // The Secret goes with the export through its owner reference.
        return Ok(Action::await_change());
    }
    let Some(_share) = ctx.limits.enter(&kcx.namespace().unwrap_or_default(), None) else {
        return Ok(Action::requeue(super::limits::SHARE_RETRY));
    };
    let now = Timestamp::now();
    if !status::needs_fetch(&kcx, now) {
        return Ok(requeue(status::until_next(&kcx, now)));
    }
    let api: Api<KubeconfigExport> =
        Api::namespaced(ctx.client.clone(), &kcx.namespace().unwrap_or_default());
    let generation = kcx.metadata.generation.unwrap_or_default();
    let interval = match parse_refresh_interval(&kcx.spec.refresh_interval) {
        Ok(interval) => interval,
        Err(e) => {
            let fallback = parse_refresh_interval(DEFAULT_REFRESH_INTERVAL)
                .unwrap_or(Duration::from_secs(3600));
            let base = kcx.status.clone().unwrap_or_default();
            let failure = fetch::kubeconfig_failure(&e);
            return fail(&api, &kcx, &ctx, base, failure, fallback).await;
        }
    };

    let base = status::refreshing(&kcx, now);
    // A first export or a changed spec shows that it is in progress (kstatus readers such as Flux
    // wait on it). A periodic refresh of a ready export does not: its Secret stays valid meanwhile,
    // so the refresh costs one status write, its outcome.
    if !status::is_ready_for_this_generation(&kcx) {
        children::write_status(&api, &kcx, &base).await?;
    }

    match export(&kcx, &ctx, &base, interval).await {
        Ok((export, write)) => {
            let done = status::exported(base.clone(), generation, &export, Timestamp::now());
            children::write_status(&api, &kcx, &done).await?;
            ctx.metrics.outcome(CONTROLLER, Reason::Exported.as_str());
            if write == SecretWrite::Written {
                let note = status::change_note(&base, &export);
                tracing::info!(kcx = %kcx.name_any(), namespace = %kcx.namespace().unwrap_or_default(), secret = %export.secret_name, server = %export.server, "kubeconfig Secret written");
                ctx.event(
                    &*kcx,
                    EventType::Normal,
                    Reason::Exported.as_str(),
                    "Export",
                    &note,
                )
                .await;
            } else {
                tracing::debug!(kcx = %kcx.name_any(), namespace = %kcx.namespace().unwrap_or_default(), "kubeconfig unchanged; Secret left as it is");
            }
            let wait = export.next_refresh.duration_since(Timestamp::now());
            Ok(requeue(Duration::try_from(wait).unwrap_or(Duration::ZERO)))
        }
        Err(failure) => fail(&api, &kcx, &ctx, base, failure, interval).await,
    }
}

/// The prefix of the labels and annotations that mean something to the operator itself.
const OPERATOR_PREFIX: &str = "kubeinvoke.io/";

/// Labels and annotations asked for in `spec.secret` cannot carry the operator's own meanings: e.g.
/// `kubeinvoke.io/allow-as-file` on an exported kubeconfig would let whoever may only create
/// RemoteCommands send it into a command without being allowed to read Secrets.
fn no_operator_meanings(kcx: &KubeconfigExport) -> Result<(), Failure> {
    let secret = &kcx.spec.secret;
    let reserved = [
        ("labels", &secret.labels),
        ("annotations", &secret.annotations),
    ]
    .into_iter()
    .find_map(|(field, map)| {
        map.keys()
            .find(|k| k.starts_with(OPERATOR_PREFIX))
            .map(|k| (field, k))
    });
    match reserved {
        Some((field, key)) => Err(Failure::terminal(
            Reason::InvalidSpec,
            format!(
                "spec.secret.{field}: {key} is the operator's own ({OPERATOR_PREFIX}…); a Secret it writes never carries it at a tenant's request"
            ),
        )),
        None => Ok(()),
    }
}

/// Fetch, render, hash, and write the Secret when its content changed.
async fn export(
    kcx: &KubeconfigExport,
    ctx: &Context,
    base: &KubeconfigExportStatus,
    interval: Duration,
) -> Result<(Export, SecretWrite), Failure> {
    no_operator_meanings(kcx)?;
    let credential = ctx
        .credential(
            &kcx.namespace().unwrap_or_default(),
            kcx.spec.credential_ref.as_ref(),
        )
        .await?;
    let source = &kcx.spec.source;
    let (resource_id, role) = match (&source.hybrid, &source.aks) {
        (Some(h), _) => (h.connected_cluster_resource_id.as_str(), h.role),
        (None, Some(a)) => (a.resource_id.as_str(), a.role),
        (None, None) => ("", Default::default()),
    };
    credential.check_use(
        &kcx.namespace().unwrap_or_default(),
        super::grants::Use {
            resource_id,
            admin_kubeconfig: role == crate::api::kubeconfig_export::Role::Admin,
            aad_token: kcx.spec.authentication
                == crate::api::kubeconfig_export::Authentication::Token,
            run_command: false,
        },
    )?;
    let fetched = fetch::fetch(ctx, kcx, &credential).await?;
    let render_ctx = RenderContext {
        authentication: kcx.spec.authentication,
        cluster_name: Some(fetched.cluster_name.clone()),
    };
    let rendered = render(&fetched.parsed, &kcx.spec.secret, &render_ctx)
        .map_err(|e| fetch::kubeconfig_failure(&e))?;
    let hash = content_hash(&rendered);
    let write = children::apply_secret(
        &ctx.client,
        kcx,
        &rendered,
        &hash,
        base.content_hash.as_deref(),
    )
    .await?;
    if let Some(previous) = base.secret_name.as_deref()
        && previous != kcx.spec.secret.name
    {
        children::delete_previous_secret(&ctx.client, kcx, previous).await?;
    }
    let expires_at = fetched.parsed.expiry();
    let now = Timestamp::now();
    Ok((
        Export {
            secret_name: kcx.spec.secret.name.clone(),
            server: fetched.parsed.server().to_string(),
            credential_name: fetched.parsed.credential_name().to_string(),
            content_hash: hash,
            expires_at,
            next_refresh: next_refresh(now, interval, expires_at),
        },
        write,
    ))
}

/// Records a failed fetch: transient ones are retried with backoff, terminal ones stall the
/// export until the spec changes or the next refresh. The Secret in place is left alone.
async fn fail(
    api: &Api<KubeconfigExport>,
    kcx: &KubeconfigExport,
    ctx: &Context,
    base: KubeconfigExportStatus,
    failure: Failure,
    interval: Duration,
) -> Result<Action, Failure> {
    let now = Timestamp::now();
    // A missing reference is waited for (retried within seconds), not a stall until the next refresh.
    let failure = if failure.awaits_reference() {
        Failure {
            transient: true,
            ..failure
        }
    } else {
        failure
    };
    let previous_reason = kcx.status.as_ref().and_then(|s| s.reason.clone());
    let retry_at = status::retry_at(&base, &failure, interval, now);
    let generation = kcx.metadata.generation.unwrap_or_default();
    let s = status::failed(base, generation, &failure, retry_at, now);
    children::write_status(api, kcx, &s).await?;
    ctx.metrics.outcome(CONTROLLER, failure.reason.as_str());
    let name = kcx.name_any();
    let namespace = kcx.namespace().unwrap_or_default();
    if failure.transient {
        tracing::info!(kcx = %name, namespace = %namespace, reason = %failure.reason, detail = %failure.message, "kubeconfig fetch failed; will retry");
    } else {
        tracing::warn!(kcx = %name, namespace = %namespace, reason = %failure.reason, detail = %failure.message, "kubeconfig export failed");
    }
    // Every terminal failure, and a transient one when it starts (not each retry).
    if !failure.transient || previous_reason.as_deref() != Some(failure.reason.as_str()) {
        ctx.event(
            kcx,
            EventType::Warning,
            failure.reason.as_str(),
            "Export",
            &failure.message,
        )
        .await;
    }
    let wait = retry_at.duration_since(now);
    Ok(requeue(Duration::try_from(wait).unwrap_or(Duration::ZERO)))
}

/// Label of this controller in metrics.
pub const CONTROLLER: &str = "kubeconfig_export";

/// Longest single wait: a far-off refresh is re-checked daily (and survives clock jumps).
const MAX_REQUEUE: Duration = Duration::from_secs(24 * 3600);

fn requeue(wait: Duration) -> Action {
    Action::requeue(wait.clamp(Duration::from_millis(100), MAX_REQUEUE))
}

/// Requeue after an error the reconcile could not record (e.g. the Kubernetes API was unavailable).
pub fn error_policy(kcx: Arc<KubeconfigExport>, failure: &Failure, _ctx: Arc<Context>) -> Action {
    tracing::warn!(kcx = %kcx.name_any(), namespace = %kcx.namespace().unwrap_or_default(), reason = %failure.reason, error = %failure.message, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}
