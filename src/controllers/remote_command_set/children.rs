//! A fleet run's children: one RemoteCommand per target, named from the set, the run and the
//! target ([`super::plan::child_name`]), controlled by the set. Launching is creating it: a create
//! that finds it already there is a launch done before (by this replica, or by one that crashed or
//! lost the Lease), so a target never gets a second command in one run; each child then keeps the
//! never-twice protocol of every RemoteCommand.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use super::plan::Child;
use crate::api::remote_command::{
    AksTarget, ContainerInstanceTarget, OutputSpec, RemoteCommandSpec, Target,
};
use crate::api::remote_command_set::{FleetResourceType, RemoteCommandSet};
use crate::api::{Phase, RemoteCommand};
use crate::controllers::context::FIELD_MANAGER;
use crate::controllers::reason::{Failure, Reason};

/// Label of a child: the run it belongs to (the set's `status.runKey`); the set's watch of its
/// children selects on it.
pub const RUN_LABEL: &str = "kubeinvoke.io/remote-command-set-run";

/// The RemoteCommand of `target` for `set`'s run `run_key`.
pub fn child(set: &RemoteCommandSet, run_key: &str, name: &str, target: &str) -> RemoteCommand {
    let t = &set.spec.template;
    let target = match set.spec.targets.resource_type {
        FleetResourceType::ManagedClusters => Target {
            aks: Some(AksTarget {
                resource_id: target.to_string(),
            }),
            container_instance: None,
        },
        FleetResourceType::ContainerGroups => Target {
            aks: None,
            container_instance: Some(ContainerInstanceTarget {
                resource_id: target.to_string(),
                container: t.container.clone().unwrap_or_default(),
                shell: t.shell.clone(),
            }),
        },
    };
    let spec = RemoteCommandSpec {
        target,
        command: t.command.clone(),
        files: t.files.clone(),
        run_id: set.spec.run_id.clone(),
        timeout_seconds: t
            .timeout_seconds
            .unwrap_or(crate::api::remote_command::DEFAULT_TIMEOUT_SECONDS),
        starting_deadline_seconds: None,
        max_attempts: t
            .max_attempts
            .unwrap_or(crate::api::remote_command::DEFAULT_MAX_ATTEMPTS),
        dispatch_policy: t.dispatch_policy,
        output: OutputSpec {
            secret_name: None,
            tail_bytes: t.tail_bytes.unwrap_or_default(),
        },
        // The set deletes its run's children once the whole run completed (never one by one).
        ttl_seconds_after_finished: None,
        credential_ref: t.credential_ref.clone(),
    };
    let mut rc = RemoteCommand::new(name, spec);
    rc.metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: set.namespace(),
        labels: Some(BTreeMap::from([(
            RUN_LABEL.to_string(),
            run_key.to_string(),
        )])),
        owner_references: set.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    };
    rc
}

/// Creates `rc`; one that exists already (this set's, from an earlier launch) is fine.
pub async fn launch(api: &Api<RemoteCommand>, rc: &RemoteCommand) -> Result<(), Failure> {
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    match api.create(&params, rc).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(kube::Error::Api(e)) if matches!(e.code, 400 | 422) => Err(Failure::terminal(
            Reason::InvalidSpec,
            format!(
                "the API server refused the RemoteCommand for a target ({}): {}",
                e.code,
                crate::text::truncate(&e.message, 600)
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A launched target whose RemoteCommand was deleted while the run went on: it counts as failed,
/// with `ResultUnavailable` (whether it ran is unknown), and is never launched again.
pub fn gone(name: String) -> Child {
    Child {
        name,
        phase: Phase::Failed,
        reason: Some(Reason::ResultUnavailable.as_str().to_string()),
        exit_code: None,
    }
}

/// Deletes a child of a completed run (its TTL); gone already is fine.
pub async fn delete(api: &Api<RemoteCommand>, name: &str) -> Result<(), Failure> {
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Children created by this replica that its cache has not shown yet, per set: counted as pending,
/// so a reconcile that runs before the watch catches up does not launch past `maxConcurrency`.
#[derive(Default)]
pub struct Launched(Mutex<HashMap<String, BTreeSet<String>>>);

impl Launched {
    pub fn record(&self, set_uid: &str, name: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(set_uid.to_string())
            .or_default()
            .insert(name.to_string());
    }

    /// The names still unseen for `set_uid`, forgetting those `seen` now holds.
    fn unseen(&self, set_uid: &str, seen: &dyn Fn(&str) -> bool) -> BTreeSet<String> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(names) = map.get_mut(set_uid) else {
            return BTreeSet::new();
        };
        names.retain(|n| !seen(n));
        let left = names.clone();
        if names.is_empty() {
            map.remove(set_uid);
        }
        left
    }

    /// Forgets a set (deleted, or a new run).
    pub fn forget(&self, set_uid: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(set_uid);
    }
}

/// What the run's children say, by target index: from the RemoteCommand cache (children of this
/// set and run), and the ones launched but not seen yet as pending.
pub fn observe(
    set: &RemoteCommandSet,
    run_key: &str,
    targets: &[String],
    store: &Store<RemoteCommand>,
    launched: &Launched,
) -> BTreeMap<usize, Child> {
    let set_name = set.name_any();
    let namespace = set.namespace();
    let uid = set.uid().unwrap_or_default();
    let by_name: HashMap<String, usize> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| (super::plan::child_name(&set_name, run_key, t), i))
        .collect();
    let mut children = BTreeMap::new();
    for rc in store.state() {
        // The cache keeps no labels; the name says the run, the owner reference the set.
        let ours =
            rc.namespace() == namespace && rc.owner_references().iter().any(|o| o.uid == uid);
        let Some(&i) = by_name.get(&rc.name_any()).filter(|_| ours) else {
            continue;
        };
        let status = rc.status.clone().unwrap_or_default();
        // A child that has not seen its current spec yet is pending, whatever an old status says.
        let current = status.observed_generation == rc.metadata.generation.unwrap_or_default();
        children.insert(
            i,
            Child {
                name: rc.name_any(),
                phase: status.phase.filter(|_| current).unwrap_or(Phase::Pending),
                reason: status.reason,
                exit_code: status.exit_code,
            },
        );
    }
    let seen = |name: &str| by_name.get(name).is_some_and(|i| children.contains_key(i));
    for name in launched.unseen(&uid, &seen) {
        if let Some(&i) = by_name.get(&name) {
            children.insert(
                i,
                Child {
                    name,
                    phase: Phase::Pending,
                    reason: None,
                    exit_code: None,
                },
            );
        }
    }
    children
}
