//! `RemoteCommand`: run a command on a private AKS cluster (ARM runCommand) or inside an Azure
//! Container Instances container (ARM exec), once per (generation, runId).
// Each kube `printcolumn(...)` repeats `type_ = …`; clippy mistakes that for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    AKS_CLUSTER_ID_PATTERN, CONTAINER_GROUP_ID_PATTERN, CONTAINER_NAME_PATTERN, CredentialRef,
    DNS_SUBDOMAIN_PATTERN, Phase, RELATIVE_PATH_PATTERN,
};

/// Default of `spec.timeoutSeconds`.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 600;
/// Upper bound of `spec.timeoutSeconds` (one day).
pub const MAX_TIMEOUT_SECONDS: i64 = 86_400;
/// Default of `spec.maxAttempts`.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;
/// Default of `spec.output.tailBytes`: none. Status is readable by everyone with the aggregated
/// `view` role, the output Secret only by who may read Secrets; a tail in status is opt-in.
pub const DEFAULT_TAIL_BYTES: i32 = 0;
/// Upper bound of `spec.output.tailBytes`.
pub const MAX_TAIL_BYTES: i32 = 16_384;

/// What to run and where, how long it may take, how often a dispatch that provably did not start
/// is tried again, and where the output goes. Each generation runs once per `runId`: change
/// `runId` to run an unchanged spec again.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kubeinvoke.io",
    version = "v1alpha1",
    kind = "RemoteCommand",
    namespaced,
    status = "RemoteCommandStatus",
    shortname = "rcmd",
    category = "kubeinvoke",
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.target.*.resourceId",
        description = "ARM resource ID of the AKS cluster or container group"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Running, Succeeded or Failed"
    ),
    printcolumn(
        name = "Exit",
        type_ = "integer",
        json_path = ".status.exitCode",
        description = "Exit code of the command, when known"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        priority = 1,
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
    doc = "A command to run once on a private AKS cluster or inside an Azure Container Instances container, through Azure Resource Manager only; its exit code, timings and output come back in status and an output Secret. Changing the spec or its runId runs it again."
)]
#[serde(rename_all = "camelCase")]
pub struct RemoteCommandSpec {
    /// Where the command runs: exactly one of `aks` or `containerInstance`.
    pub target: Target,

    /// The command line. For `aks` it runs in a pod with kubectl and helm (like
    /// `az aks command invoke --command`). For `containerInstance` without `shell` it must be a single
    /// executable with no arguments (an ACI restriction); with `shell` it is a shell command line.
    #[schemars(length(min = 1, max = 65536))]
    pub command: String,

    /// AKS only (a `containerInstance` run ignores them): files zipped into the request context
    /// and placed in the command's working directory, like `az aks command invoke --file`. A Secret is used only when it carries the
    /// label `kubeinvoke.io/allow-as-file: "true"`, and never a credential Secret. At most 8
    /// entries (so at most 8 ConfigMaps and Secrets are read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub files: Vec<FileSource>,

    /// Change it to run the same spec again. A re-apply with the same runId and generation never
    /// runs the command twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub run_id: Option<String>,

    /// Deadline of the whole run, from its start (the first reconcile, waiting for a credential or
    /// file Secret included) to the result, in seconds. Past it a dispatched run fails with
    /// `reason: DeadlineExceeded` (ARM has no cancel for run command: the command itself may go on);
    /// one still waiting for a reference fails with that reference's reason.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: i64,

    /// How late the run may still start, in seconds after it was asked for (the object's
    /// creation, or the latest change of its spec by anyone but the operator), like a CronJob's
    /// `startingDeadlineSeconds`. A run not dispatched by then fails with
    /// `reason: StartingDeadlineExceeded` and is never sent (e.g. when no operator ran meanwhile).
    /// Unset: no bound. `kubectl invoke` sets it to its `--timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub starting_deadline_seconds: Option<i64>,

    /// How many attempts one run may make in all: a command that provably did not start
    /// (`CommandDidNotStart`) is sent again up to this many, and so, under `AtLeastOnce`, is one
    /// whose dispatch or session was interrupted or whose result vanished.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1, max = 10))]
    pub max_attempts: i32,

    /// What to do when the operator restarts after asking Azure to run the command but before it
    /// recorded Azure's answer: `AtMostOnce` fails the run with `reason: DispatchInterrupted`
    /// (or `SessionInterrupted` for ACI); `AtLeastOnce` dispatches again, while `maxAttempts`
    /// allows.
    #[serde(default)]
    pub dispatch_policy: DispatchPolicy,

    /// Where the command's output goes.
    #[serde(default)]
    pub output: OutputSpec,

    /// When set, this RemoteCommand is deleted that many seconds after its run finished
    /// (`Succeeded` or `Failed`, from `status.completionTime`), like a Job's; never while it is
    /// `Pending` or `Running`. What it owns goes with it: its output Secret and the ConfigMaps
    /// `kubectl invoke --file` made. Deleting it never runs the command again. `kubectl invoke`
    /// sets it from `--ttl` (default one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,

    /// Azure credentials: a Secret in this namespace. When absent, the Secret
    /// `kubeinvoke-credentials` in this namespace, else the operator's own identity (only in the
    /// namespaces the operator allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_ref: Option<CredentialRef>,
}

fn default_timeout_seconds() -> i64 {
    DEFAULT_TIMEOUT_SECONDS
}
fn default_max_attempts() -> i32 {
    DEFAULT_MAX_ATTEMPTS
}
fn default_tail_bytes() -> i32 {
    DEFAULT_TAIL_BYTES
}

/// Where a command runs: exactly one of `aks` or `containerInstance`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// A private AKS cluster, reached through ARM `runCommand` (what `az aks command invoke` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aks: Option<AksTarget>,
    /// A container of an Azure Container Instances container group, reached through ARM `exec`
    /// and its websocket (what `az container exec` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_instance: Option<ContainerInstanceTarget>,
}

impl Target {
    /// The ARM resource id of the cluster or container group ("" when neither is set).
    pub fn resource_id(&self) -> &str {
        self.aks
            .as_ref()
            .map(|t| t.resource_id.as_str())
            .or(self
                .container_instance
                .as_ref()
                .map(|t| t.resource_id.as_str()))
            .unwrap_or_default()
    }
}

/// An AKS cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AksTarget {
    /// ARM resource ID of the cluster:
    /// `/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ContainerService/managedClusters/<name>`.
    #[schemars(pattern(AKS_CLUSTER_ID_PATTERN))]
    pub resource_id: String,
}

/// A container of an ACI container group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstanceTarget {
    /// ARM resource ID of the container group:
    /// `/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ContainerInstance/containerGroups/<group>`.
    #[schemars(pattern(CONTAINER_GROUP_ID_PATTERN))]
    pub resource_id: String,
    /// Name of the container in the group.
    #[schemars(length(min = 1, max = 63), pattern(CONTAINER_NAME_PATTERN))]
    pub container: String,
    /// Optional shell to exec (e.g. `/bin/sh`). With it, `command` is sent to the shell on stdin and
    /// the real exit code is reported; without it, `command` must be one executable with no
    /// arguments and the exit code is unknowable (`reason: ExitCodeUnavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), pattern("^\\S+$"))]
    pub shell: Option<String>,
}

/// Files from a ConfigMap or a Secret in this namespace: exactly one of `configMapRef` or `secretRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSource {
    /// Every key of this ConfigMap (or the listed `items`) becomes a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<KeysRef>,
    /// Every key of this Secret (or the listed `items`) becomes a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<KeysRef>,
}

/// A ConfigMap or Secret in this namespace, and optionally which of its keys to use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeysRef {
    /// Name of the ConfigMap or Secret, in this namespace.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Keys to use and the paths to give them (at most 32); when empty, every key becomes a file
    /// named after it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub items: Vec<KeyToPath>,
}

/// One key and the relative path of its file in the command's working directory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyToPath {
    /// The key in the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// Relative path of the file (default: the key). Absolute paths and `..` are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), pattern(RELATIVE_PATH_PATTERN))]
    pub path: Option<String>,
}

/// Whether an interrupted dispatch may be repeated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DispatchPolicy {
    /// Never risk running the command twice: an interrupted dispatch fails the run.
    #[default]
    AtMostOnce,
    /// Never give up on running it: an interrupted dispatch is sent again (it may run twice).
    AtLeastOnce,
}

/// Where the command's output goes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputSpec {
    /// Name of the Secret that receives the full output (key `output`) and the exit code (key
    /// `exitCode`); default `<name>-output`. Owned by this RemoteCommand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub secret_name: Option<String>,
    /// How many bytes of the output's end go into `status.outputTail` (cut at a UTF-8 boundary);
    /// default 0. Status is readable through the aggregated `view` role, the output Secret is not:
    /// set it only for output that everyone who may view the resource may read.
    #[serde(default = "default_tail_bytes")]
    #[schemars(range(min = 0, max = 16384))]
    pub tail_bytes: i32,
}

impl Default for OutputSpec {
    fn default() -> Self {
        Self {
            secret_name: None,
            tail_bytes: DEFAULT_TAIL_BYTES,
        }
    }
}

/// What the operator observed of the current run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteCommandStatus {
    // The schema of an optional enum field carries the enum's description (kube hoists it over
    // this one), so `Phase`'s doc is what `kubectl explain` shows.
    /// Phase of the run: Pending, Running, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The `metadata.generation` this status belongs to; differs from it until the operator has
    /// seen the latest spec (tools such as kstatus read that as in progress).
    #[serde(default)]
    pub observed_generation: i64,
    /// The `spec.runId` this status belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// How many times the command was dispatched in this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// AKS only: the ARM command ID of the dispatched command (`commandResults/<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// AKS only: when the command started on the cluster, as ARM reported it (`startedAt`, seen
    /// while polling). A command seen started is never sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_started_at: Option<String>,
    /// The `x-ms-correlation-request-id` of the current attempt's ARM requests (for support
    /// tickets): a GUID unique per uid, generation, runId and attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// When the run started: the operator's first reconcile of this generation and runId (waiting
    /// for a credential or a file included); `timeoutSeconds` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Exit code of the command; absent when unknowable (ACI without `shell`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Name of the Secret holding the full output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_secret_name: Option<String>,
    /// Size of the stored output in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<i64>,
    /// True when the output may be incomplete: only its end was kept (larger than a Secret holds,
    /// or past the ACI session buffer), or it reached AKS's own 512 kB cap, where AKS may have cut
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_truncated: Option<bool>,
    /// The last `spec.output.tailBytes` of the output, valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    /// Machine-readable reason of the current state, PascalCase (e.g. `Completed`, `NonZeroExit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable explanation of the current state; never contains secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the run may trip over without being wrong, said before it does: e.g. a
    /// `timeoutSeconds` longer than Azure Container Instances keeps an exec session open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Standard conditions: `Ready`, `Reconciling` and `Stalled` (kstatus).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
