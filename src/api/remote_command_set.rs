//! `RemoteCommandSet`: one command across a fleet — an explicit list of AKS clusters or container
//! groups and/or every one an ARM selector finds — as one child RemoteCommand per target, launched
//! under `maxConcurrency` and stopped by `maxErrors` (the words of AWS SSM Run Command and Job).
// Each kube `printcolumn(...)` repeats `type_ = …`; clippy mistakes that for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CONTAINER_NAME_PATTERN, CredentialRef};
use super::remote_command::{DispatchPolicy, FileSource};

/// Most targets one run may have (its frozen list lives in status).
pub const MAX_TARGETS: usize = 1000;
/// Default of `spec.maxConcurrency` (SSM's default).
pub const DEFAULT_MAX_CONCURRENCY: i32 = 50;
/// How many failed targets `status.failedTargets` lists.
pub const MAX_FAILED_TARGETS: usize = 20;

/// The command, the fleet it runs on, and how fast. Each run resolves its targets once and keeps
/// that list; re-applying the same spec never runs anything again, a new `runId` or a change of
/// `template` or `targets` runs the whole fleet again.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kubeinvoke.io",
    version = "v1alpha1",
    kind = "RemoteCommandSet",
    namespaced,
    status = "RemoteCommandSetStatus",
    shortname = "rcmdset",
    category = "kubeinvoke",
    printcolumn(
        name = "Targets",
        type_ = "integer",
        json_path = ".status.targetCount",
        description = "How many targets this run has"
    ),
    printcolumn(
        name = "Active",
        type_ = "integer",
        json_path = ".status.active",
        description = "Targets whose command is pending or running"
    ),
    printcolumn(
        name = "Succeeded",
        type_ = "integer",
        json_path = ".status.succeeded",
        description = "Targets whose command succeeded"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.failed",
        description = "Targets whose command failed"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        description = "Machine-readable reason of the current state"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time since the object was created"
    )
)]
#[kube(
    doc = "One command across a fleet of private AKS clusters or Azure Container Instances container groups, through Azure Resource Manager only: one child RemoteCommand per target, at most maxConcurrency at once, no new launch once more than maxErrors failed."
)]
#[serde(rename_all = "camelCase")]
pub struct RemoteCommandSetSpec {
    /// What every target runs.
    pub template: RemoteCommandTemplate,

    /// Where it runs: `resourceIds`, a `selector`, or both (their union).
    pub targets: FleetTargets,

    /// Change it to run the same spec again on the whole fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub run_id: Option<String>,

    /// How many targets' commands may be pending or running at once: a number, or a percentage of
    /// the targets (`"10%"`, at least one). Default 50. Changing it does not start a new run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<IntOrString>,

    /// How many targets may fail before no new one is launched (those running finish): a number,
    /// or a percentage of the targets. Default 0: the first failure stops launching. Changing it
    /// does not start a new run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<IntOrString>,

    /// True: launch nothing new (running commands go on); false again resumes where it stopped.
    #[serde(default)]
    pub suspend: bool,
}

/// The RemoteCommand each target gets, without its target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteCommandTemplate {
    /// The command line (as a RemoteCommand's `command`).
    #[schemars(length(min = 1, max = 65536))]
    pub command: String,
    /// AKS only: files for the command's working directory (as a RemoteCommand's `files`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub files: Vec<FileSource>,
    /// Container groups only: the container to exec into in each group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(CONTAINER_NAME_PATTERN))]
    pub container: Option<String>,
    /// Container groups only: the shell that runs `command` (as a RemoteCommand's
    /// `containerInstance.shell`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), pattern("^\\S+$"))]
    pub shell: Option<String>,
    /// Deadline of each target's run, in seconds (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: Option<i64>,
    /// Attempts per target (default 3), as a RemoteCommand's `maxAttempts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub max_attempts: Option<i32>,
    /// As a RemoteCommand's `dispatchPolicy` (default `AtMostOnce`).
    #[serde(default)]
    pub dispatch_policy: DispatchPolicy,
    /// Bytes of each target's output end in its RemoteCommand's `status.outputTail` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16384))]
    pub tail_bytes: Option<i32>,
    /// The run's RemoteCommands (with their output Secrets) are deleted that long after the whole
    /// run completed — never one by one while it runs, so no target can look unlaunched and run
    /// again; the set keeps the run's counts. Unset: kept while the set exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,
    /// Azure credentials (a Secret in this namespace), for the discovery and every target; default
    /// as a RemoteCommand's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_ref: Option<CredentialRef>,
}

/// Explicit targets and/or a selector over ARM; their union, each target once.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetTargets {
    /// The kind of every target: AKS clusters (`ManagedClusters`, default) or container groups
    /// (`ContainerGroups`).
    #[serde(default)]
    pub resource_type: FleetResourceType,
    /// ARM resource IDs of AKS clusters or container groups (of `resourceType`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub resource_ids: Vec<String>,
    /// Every resource of `resourceType` that ARM lists in these scopes and whose tags match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<ArmSelector>,
}

/// What a fleet is made of.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FleetResourceType {
    /// `Microsoft.ContainerService/managedClusters`: AKS clusters, by ARM runCommand.
    #[default]
    ManagedClusters,
    /// `Microsoft.ContainerInstance/containerGroups`: container groups, by ARM exec.
    ContainerGroups,
}

/// Resources ARM lists (per subscription, or per resource group), filtered by their tags like a
/// label selector: every `matchTags` entry and every expression must hold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArmSelector {
    /// Subscription IDs to list in.
    #[schemars(length(min = 1, max = 100))]
    pub subscriptions: Vec<String>,
    /// Only these resource groups of each subscription (default: the whole subscription).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub resource_groups: Vec<String>,
    /// Tags a target must carry with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_tags: BTreeMap<String, String>,
    /// Tag requirements, as a label selector's `matchExpressions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub match_expressions: Vec<TagRequirement>,
}

/// One tag requirement: `In` and `NotIn` take `values`, `Exists` and `DoesNotExist` none.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagRequirement {
    /// The tag name (ARM compares tag names without regard to case).
    #[schemars(length(min = 1, max = 512))]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: TagOperator,
    /// The values `In` and `NotIn` compare with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub values: Vec<String>,
}

/// How a tag requirement compares.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TagOperator {
    /// The tag is there with one of `values`.
    #[default]
    In,
    /// The tag is absent, or has none of `values`.
    NotIn,
    /// The tag is there, whatever its value.
    Exists,
    /// The tag is absent.
    DoesNotExist,
}

/// The current run of the fleet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteCommandSetStatus {
    /// The `metadata.generation` this status belongs to.
    #[serde(default)]
    pub observed_generation: i64,
    /// Which run this is: a digest of `template`, `targets` and `runId`; each target's
    /// RemoteCommand is named from it and the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_key: Option<String>,
    /// The `spec.runId` of this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run's targets, resolved once when it started (a cluster that appears later does not
    /// join it), in launch order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// How many targets the run has.
    #[serde(default)]
    pub target_count: i32,
    /// Targets whose command is pending or running.
    #[serde(default)]
    pub active: i32,
    /// Targets whose command succeeded.
    #[serde(default)]
    pub succeeded: i32,
    /// Targets whose command failed.
    #[serde(default)]
    pub failed: i32,
    /// Targets not launched (yet, or ever once `maxErrors` stopped the run).
    #[serde(default)]
    pub not_started: i32,
    /// How many targets, in launch order, have had their RemoteCommand created in this run: none
    /// of them is ever launched again in it, even if its RemoteCommand is deleted.
    #[serde(default)]
    pub launched: i32,
    /// When the run started (its targets were resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the run ended: every target finished, or launching stopped and nothing runs any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The first failed targets (at most 20), with their reasons. Always written, empty too: a
    /// new run's empty list must replace the last run's.
    #[serde(default)]
    pub failed_targets: Vec<FailedTarget>,
    /// Machine-readable reason of the current state (e.g. `Running`, `Completed`,
    /// `MaxErrorsExceeded`, `Suspended`, `InvalidSpec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable explanation of the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Standard conditions: `Ready`, `Reconciling`, `Stalled` (kstatus) and `Suspended`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A target whose command failed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedTarget {
    /// The target's ARM resource ID.
    pub resource_id: String,
    /// Its RemoteCommand.
    pub name: String,
    /// That RemoteCommand's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The command's exit code, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}
