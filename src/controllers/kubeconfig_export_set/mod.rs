//! The KubeconfigExportSet controller: lists the selector's scopes every `discoveryInterval`,
//! keeps one KubeconfigExport per selected cluster (each fetches and refreshes its own kubeconfig),
//! and lets a cluster go only after several successful listings in a row did not show it. Between
//! listings a reconcile only counts what its children say; they wake it through the set's watch.

pub mod children;
pub mod plan;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;

use super::conditions::{self, Health};
use super::context::Context;
use super::grants::Use;
use super::reason::{Failure, Reason};
use super::selector;
use crate::api::KubeconfigExport;
use crate::api::kubeconfig_export::{Authentication, Role};
use crate::api::kubeconfig_export_set::{
    ClusterType, FailedCluster, KubeconfigExportSet, KubeconfigExportSetStatus, MAX_CLUSTERS,
    MAX_LISTED,
};
use crate::azure::discovery;
use crate::azure::resource_id::{AksClusterId, ConnectedClusterId};
use crate::kubeconfig::parse_refresh_interval;
use children::Existing;
use plan::Listing;

/// Label of this controller in metrics.
pub const CONTROLLER: &str = "kubeconfig_export_set";

/// A listing that failed for a passing reason (throttling, a network error, a credential that may
/// still appear) is tried again this soon; one refused for good waits a whole interval.
const TRANSIENT_RETRY: Duration = Duration::from_secs(30);

/// One step of `set`: list ARM when due, then bring its exports to what the listing says, and
/// count them. `exports` is the KubeconfigExport cache of the set's watch scope.
pub async fn reconcile(
    set: Arc<KubeconfigExportSet>,
    ctx: Arc<Context>,
    exports: Store<KubeconfigExport>,
) -> Result<Action, Failure> {
    if set.metadata.deletion_timestamp.is_some() {
        // Its exports, and their Secrets, go with it through their owner references.
        return Ok(Action::await_change());
    }
    // What the set holds is read from the exports' cache: never before it is filled.
    if exports.wait_until_ready().await.is_err() {
        return Ok(Action::await_change());
    }
    let namespace = set.namespace().unwrap_or_default();
    let Some(_share) = ctx.limits.enter(&namespace, None) else {
        return Ok(Action::requeue(super::limits::SHARE_RETRY));
    };
    let api: Api<KubeconfigExportSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let generation = set.metadata.generation.unwrap_or_default();
    let now = Timestamp::now();
    let mut status = set.status.clone().unwrap_or_default();
    let interval = match validate(&set) {
        Ok(interval) => interval,
        Err(failure) => return held_up(&api, &set, &ctx, status, failure).await,
    };

    let due = status.observed_generation != generation
        || status
            .next_discovery_time
            .as_ref()
            .is_none_or(|t| t.0 <= now);
    let held = children::held(&exports, &set);
    let held_ids: Vec<String> = held.iter().map(|(id, _)| id.clone()).collect();
    let (listing, listing_failure) = if due {
        match discover(&set, &ctx).await {
            Ok(listing) => (Some(listing), None),
            Err(failure) => (None, Some(failure)),
        }
    } else {
        (None, None)
    };
    let members = plan::membership(
        &held_ids,
        listing.as_ref(),
        &status.absent_clusters,
        set.spec.prune_after_absent_listings,
    );

    let kcx_api: Api<KubeconfigExport> = Api::namespaced(ctx.client.clone(), &namespace);
    let held_keys: BTreeSet<String> = held_ids.iter().map(|i| i.to_ascii_lowercase()).collect();
    let names = plan::secret_names(
        set.spec.template.secret.name_pattern.as_deref(),
        &members.hold,
        &held_keys,
    );
    let mut failed = Vec::new();
    if listing.is_none() {
        // Clusters the last listing found but could not give an export (a Secret name another
        // cluster has, an export of their name the set does not control) have no child to say
        // so: they stay listed until the next listing looks at them again.
        let unexported = [Reason::SecretConflict.as_str(), Reason::Conflict.as_str()];
        failed.extend(
            status
                .failed_clusters
                .iter()
                .filter(|f| unexported.contains(&f.reason.as_str()))
                .cloned(),
        );
    }
    let mut exported = Vec::new();
    let mut added = 0;
    for id in &members.hold {
        let name = plan::child_name(&set.name_any(), id);
        let secret = match &names[id] {
            Ok(secret) => secret,
            Err(_holder) => {
                failed.push(failed_cluster(id, None, Reason::SecretConflict));
                continue;
            }
        };
        let desired = children::spec(&set, id, secret);
        match children::existing(&exports, &set, &name) {
            Existing::Foreign => {
                failed.push(failed_cluster(id, Some(&name), Reason::Conflict));
                continue;
            }
            Existing::Ours(current) if *current == desired => {}
            existing => {
                added += usize::from(matches!(existing, Existing::Missing));
                children::apply(&kcx_api, &set, &name, &desired).await?;
            }
        }
        exported.push(name);
    }
    for id in &members.prune {
        if let Some((_, kcx)) = held.iter().find(|(h, _)| h == id) {
            children::delete(&kcx_api, &kcx.name_any(), &kcx.uid().unwrap_or_default()).await?;
        }
    }
    if added > 0 || !members.prune.is_empty() {
        tracing::info!(set = %set.name_any(), namespace = %namespace, added, removed = members.prune.len(), "fleet exports changed");
        let note = format!("{added} clusters added, {} removed", members.prune.len());
        ctx.event(
            &*set,
            EventType::Normal,
            "ClustersChanged",
            "Discover",
            &note,
        )
        .await;
    }
    if !members.unconfirmed.is_empty() {
        let note = format!(
            "{} held clusters were not confirmed: their scope was listed empty (lost access?); they are kept",
            members.unconfirmed.len()
        );
        ctx.event(&*set, EventType::Warning, "EmptyListing", "Discover", &note)
            .await;
    }

    let before = status.clone();
    status.observed_generation = generation;
    status.absent_clusters = members.absent.clone();
    let ready = count_children(&exports, &set, &exported, &mut failed);
    status.clusters = i32::try_from(exported.len()).unwrap_or(i32::MAX);
    status.ready = i32::try_from(ready).unwrap_or(i32::MAX);
    failed.truncate(MAX_LISTED);
    status.failed_clusters = failed;
    let wait = match (&listing, &listing_failure) {
        (Some(l), _) => {
            status.last_discovery_time = Some(Time(now));
            let note = format!("{} clusters selected", l.selected.len());
            conditions::set(
                &mut status.conditions,
                "Discovered",
                "True",
                "Listed",
                &note,
                generation,
                &Time(now),
            );
            interval
        }
        (None, Some(f)) => {
            conditions::set(
                &mut status.conditions,
                "Discovered",
                "False",
                f.reason.as_str(),
                &f.message,
                generation,
                &Time(now),
            );
            if f.transient || f.awaits_reference() {
                TRANSIENT_RETRY.min(interval)
            } else {
                interval
            }
        }
        (None, None) => Duration::ZERO,
    };
    if due {
        status.next_discovery_time = Some(Time(
            now + SignedDuration::try_from(wait).unwrap_or_default(),
        ));
    }
    settle(&mut status, generation, listing_failure.as_ref(), now);
    if status != before {
        write_status(&api, &set, &status).await?;
        if status.reason != before.reason
            && let Some(f) = &listing_failure
        {
            tracing::warn!(set = %set.name_any(), namespace = %namespace, reason = %f.reason, detail = %f.message, "fleet listing failed; exports kept");
            ctx.event(
                &*set,
                EventType::Warning,
                f.reason.as_str(),
                "Discover",
                &f.message,
            )
            .await;
        }
    }
    // Counted from now, not from the start of this reconcile: creating hundreds of exports takes
    // seconds, and the next listing is due at its time.
    let until_next = status
        .next_discovery_time
        .as_ref()
        .map(|t| Duration::try_from(t.0.duration_since(Timestamp::now())).unwrap_or_default())
        .unwrap_or(interval);
    Ok(Action::requeue(until_next.max(Duration::from_secs(1))))
}

/// The spec's discovery interval, and what the schema cannot say about the spec.
fn validate(set: &KubeconfigExportSet) -> Result<Duration, Failure> {
    let invalid = |m: String| Failure::terminal(Reason::InvalidSpec, m);
    let spec = &set.spec;
    let interval = parse_refresh_interval(&spec.discovery_interval)
        .map_err(|e| invalid(format!("spec.discoveryInterval: {e}")))?;
    if let Some(r) = &spec.template.refresh_interval {
        parse_refresh_interval(r)
            .map_err(|e| invalid(format!("spec.template.refreshInterval: {e}")))?;
    }
    plan::check_pattern(spec.template.secret.name_pattern.as_deref()).map_err(invalid)?;
    selector::validate(&spec.selector.scope, "spec.selector")?;
    if spec.selector.resource_type == ClusterType::ConnectedClusters
        && spec.template.server_fqdn.is_some()
    {
        return Err(invalid(
            "spec.template.serverFqdn is for ManagedClusters only".into(),
        ));
    }
    if spec.selector.resource_type == ClusterType::ManagedClusters
        && spec.template.api_version.is_some()
    {
        return Err(invalid(
            "spec.template.apiVersion is for ConnectedClusters only".into(),
        ));
    }
    Ok(interval)
}

/// Lists every scope with the set's credential: the selected clusters, and the scopes listed empty.
async fn discover(set: &KubeconfigExportSet, ctx: &Context) -> Result<Listing, Failure> {
    let namespace = set.namespace().unwrap_or_default();
    let uid = set.uid().unwrap_or_default();
    let t = &set.spec.template;
    let who = selector::Lister {
        namespace: &namespace,
        credential_ref: t.credential_ref.as_ref(),
        wanted: Use {
            resource_id: "",
            admin_kubeconfig: t.role == Role::Admin,
            aad_token: t.authentication == Authentication::Token,
            run_command: false,
        },
        seed: &uid,
    };
    let kind = match set.spec.selector.resource_type {
        ClusterType::ManagedClusters => discovery::MANAGED_CLUSTERS,
        ClusterType::ConnectedClusters => discovery::CONNECTED_CLUSTERS,
    };
    let scopes = selector::list(ctx, &who, &set.spec.selector.scope, kind, MAX_CLUSTERS).await?;
    let mut listing = Listing::default();
    for scope in scopes {
        if scope.listed == 0 {
            listing.empty_scopes.push(scope.scope);
        }
        listing.selected.extend(
            scope
                .selected
                .into_iter()
                .filter_map(|r| canonical(set.spec.selector.resource_type, &r.id)),
        );
    }
    let mut seen = BTreeSet::new();
    listing
        .selected
        .retain(|id| seen.insert(id.to_ascii_lowercase()));
    if listing.selected.len() > MAX_CLUSTERS {
        return Err(Failure::terminal(
            Reason::InvalidSpec,
            format!(
                "{} clusters selected; a set holds at most {MAX_CLUSTERS} (narrow the selector or split the set)",
                listing.selected.len()
            ),
        ));
    }
    Ok(listing)
}

fn canonical(kind: ClusterType, id: &str) -> Option<String> {
    match kind {
        ClusterType::ManagedClusters => id.parse::<AksClusterId>().ok().map(|i| i.to_string()),
        ClusterType::ConnectedClusters => {
            id.parse::<ConnectedClusterId>().ok().map(|i| i.to_string())
        }
    }
}

fn failed_cluster(id: &str, export: Option<&str>, reason: Reason) -> FailedCluster {
    FailedCluster {
        resource_id: id.to_string(),
        export: export.map(str::to_string),
        reason: reason.as_str().to_string(),
    }
}

/// How many of the `exported` children are ready; the stalled ones join `failed`.
fn count_children(
    exports: &Store<KubeconfigExport>,
    set: &KubeconfigExportSet,
    exported: &[String],
    failed: &mut Vec<FailedCluster>,
) -> usize {
    let namespace = set.namespace().unwrap_or_default();
    let condition = |kcx: &KubeconfigExport, type_: &str| {
        kcx.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == "True")
        })
    };
    let mut ready = 0;
    for name in exported {
        let key = kube::runtime::reflector::ObjectRef::new(name).within(&namespace);
        let Some(kcx) = exports.get(&key) else {
            continue;
        };
        let current = kcx.status.as_ref().map(|s| s.observed_generation) == kcx.metadata.generation;
        if current && condition(&kcx, "Ready") {
            ready += 1;
        } else if current && condition(&kcx, "Stalled") {
            let id = children::held_id(&kcx).unwrap_or_default();
            let reason = kcx
                .status
                .as_ref()
                .and_then(|s| s.reason.clone())
                .unwrap_or_default();
            failed.push(FailedCluster {
                resource_id: id,
                export: Some(name.clone()),
                reason,
            });
        }
    }
    ready
}

/// The set's reason and kstatus conditions from its counts and the last listing.
fn settle(
    status: &mut KubeconfigExportSetStatus,
    generation: i64,
    listing_failure: Option<&Failure>,
    now: Timestamp,
) {
    let (health, reason, message) = if let Some(f) = listing_failure {
        let health = if f.transient || f.awaits_reference() {
            Health::Progressing
        } else {
            Health::Stalled
        };
        (
            health,
            f.reason,
            format!(
                "listing ARM failed; the {} exports are kept: {}",
                status.clusters, f.message
            ),
        )
    } else if let Some(d) = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Discovered" && c.status == "False")
    {
        // The last listing failed and no new one ran: keep saying so.
        let reason = Reason::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == d.reason)
            .unwrap_or(Reason::Retrying);
        (
            Health::Progressing,
            reason,
            format!(
                "listing ARM failed; the {} exports are kept: {}",
                status.clusters, d.message
            ),
        )
    } else if !status.failed_clusters.is_empty() {
        (
            Health::Stalled,
            Reason::ExportsFailed,
            format!(
                "{} of {} clusters' exports failed; {} ready",
                status.failed_clusters.len(),
                status.clusters,
                status.ready
            ),
        )
    } else if status.ready == status.clusters {
        (
            Health::Ready,
            Reason::Exported,
            format!("{} clusters exported", status.clusters),
        )
    } else {
        (
            Health::Progressing,
            Reason::Refreshing,
            format!("{} of {} clusters exported", status.ready, status.clusters),
        )
    };
    let reason = reason.as_str();
    if status.reason.as_deref() != Some(reason)
        || status.message.as_deref() != Some(message.as_str())
    {
        conditions::apply(
            &mut status.conditions,
            health,
            reason,
            &message,
            generation,
            &Time(now),
        );
        status.reason = Some(reason.to_string());
        status.message = Some(crate::text::clean(&message, 1024));
    }
}

/// Records a failure of the spec itself: nothing is listed or changed until the spec changes.
async fn held_up(
    api: &Api<KubeconfigExportSet>,
    set: &KubeconfigExportSet,
    ctx: &Context,
    mut status: KubeconfigExportSetStatus,
    failure: Failure,
) -> Result<Action, Failure> {
    let generation = set.metadata.generation.unwrap_or_default();
    let reason = failure.reason.as_str();
    let changed =
        status.reason.as_deref() != Some(reason) || status.observed_generation != generation;
    status.observed_generation = generation;
    conditions::apply(
        &mut status.conditions,
        Health::Stalled,
        reason,
        &failure.message,
        generation,
        &Time(Timestamp::now()),
    );
    status.reason = Some(reason.to_string());
    status.message = Some(crate::text::clean(&failure.message, 1024));
    if changed {
        write_status(api, set, &status).await?;
        tracing::warn!(set = %set.name_any(), namespace = %set.namespace().unwrap_or_default(), reason, detail = %failure.message, "fleet exports held");
        ctx.event(
            set,
            EventType::Warning,
            reason,
            "Validate",
            &failure.message,
        )
        .await;
    }
    ctx.metrics.outcome(CONTROLLER, reason);
    Ok(Action::await_change())
}

/// Applies the whole status (we own every field of it).
async fn write_status(
    api: &Api<KubeconfigExportSet>,
    set: &KubeconfigExportSet,
    status: &KubeconfigExportSetStatus,
) -> Result<(), Failure> {
    // Fenced: the set was read from the cache, which may not show our last write yet.
    let read_at = set.metadata.resource_version.as_deref();
    crate::controllers::status::apply(api, &set.name_any(), status, read_at).await
}

/// Requeue after an error the reconcile could not record.
pub fn error_policy(
    set: Arc<KubeconfigExportSet>,
    failure: &Failure,
    _ctx: Arc<Context>,
) -> Action {
    let namespace = set.namespace().unwrap_or_default();
    super::status::retry("KubeconfigExportSet", &set.name_any(), &namespace, failure)
}
