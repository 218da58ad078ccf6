//! AKS through ARM: cluster facts, Run Command (`az aks command invoke`) and cluster credentials.

use std::collections::HashSet;
use std::fmt;
use std::io::{Cursor, Write};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::json;

use super::KubeconfigCredential;
use super::client::{ArmClient, ArmRequest, CallContext, expect_json};
use super::error::ArmError;
use super::lro::{self, OperationState, operation_state};
use super::resource_id::AksClusterId;
use super::secret::Secret;

pub const DEFAULT_API_VERSION: &str = "2025-10-01";
/// The largest request body ARM accepts (4 MiB).
pub const ARM_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Operation name of the run command dispatch (metrics, logs, budget reservations).
pub const RUN_COMMAND_OP: &str = "ManagedClusters_RunCommand";

/// The cluster facts the controllers need before dispatching; callers cache them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterInfo {
    /// AKS-managed Entra ID: run command needs a `clusterToken`.
    pub aad_managed: bool,
    /// `aadProfile.tenantID`: the tenant the `clusterToken` must come from (the subscription's
    /// tenant when absent).
    pub aad_tenant_id: Option<String>,
    /// `apiServerAccessProfile.disableRunCommand`.
    pub run_command_disabled: bool,
    pub provisioning_state: Option<String>,
    /// `powerState.code`: `Running`, or `Stopped` for a cluster stopped with `az aks stop` (whose
    /// provisioning state stays `Succeeded`: Azure/AKS #1871).
    pub power_state: Option<String>,
    pub fqdn: Option<String>,
    pub private_fqdn: Option<String>,
}

/// The id ARM gives a dispatched command (`commandResults/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommandId(String);

impl CommandId {
    /// Ids are opaque but end up in URL paths and status fields: letters, digits, `-` and `_` only.
    pub fn new(id: &str) -> Result<Self, String> {
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(id.to_string()))
        } else {
            Err(format!("'{id}' is not a command id"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// ARM accepted a run command.
#[derive(Debug, Clone)]
pub struct RunCommandAccepted {
    pub command_id: CommandId,
    /// The full `Location`, as ARM gave it.
    pub location: Url,
    pub retry_after: Option<Duration>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct RunCommandResult {
    pub provisioning_state: String,
    /// `provisioningState` is Succeeded: the command ran (check `exit_code`).
    pub succeeded: bool,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Combined stdout/stderr; may hold secrets, so it is redacted from `Debug`.
    pub logs: String,
    /// Why the command could not run, when `succeeded` is false.
    pub reason: Option<String>,
}

impl fmt::Debug for RunCommandResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunCommandResult")
            .field("provisioning_state", &self.provisioning_state)
            .field("exit_code", &self.exit_code)
            .field("started_at", &self.started_at)
            .field("finished_at", &self.finished_at)
            .field("logs", &format_args!("<{} bytes>", self.logs.len()))
            .field("reason", &self.reason)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandStatus {
    Running {
        retry_after: Option<Duration>,
        /// `startedAt` when ARM's in-progress answer carries it: the command pod started.
        started_at: Option<String>,
    },
    Finished(RunCommandResult),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialFormat {
    /// kubelogin exec plugin.
    Exec,
    /// Legacy `auth-provider: azure` (dead on Kubernetes ≥ 1.26).
    Azure,
}

#[derive(Debug, Clone)]
pub struct AksClient {
    arm: ArmClient,
    api_version: String,
    /// When each command's result may be polled again.
    polls: super::polls::Polls,
}

#[derive(Deserialize)]
struct ClusterBody {
    #[serde(default)]
    properties: ClusterProperties,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ClusterProperties {
    provisioning_state: Option<String>,
    fqdn: Option<String>,
    /// ARM spells it `privateFQDN` (not camelCase) in every AKS api-version.
    #[serde(rename = "privateFQDN", alias = "privateFqdn")]
    private_fqdn: Option<String>,
    aad_profile: Option<AadProfile>,
    api_server_access_profile: Option<ApiServerAccessProfile>,
    power_state: Option<PowerState>,
}

#[derive(Deserialize)]
struct AadProfile {
    managed: Option<bool>,
    /// The tenant of the cluster's Entra ID integration (ARM spells it `tenantID`).
    #[serde(rename = "tenantID", alias = "tenantId")]
    tenant_id: Option<String>,
}

#[derive(Deserialize)]
struct PowerState {
    code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiServerAccessProfile {
    disable_run_command: Option<bool>,
}

#[derive(Deserialize)]
struct ResultBody {
    properties: Option<ResultProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultProperties {
    provisioning_state: Option<String>,
    exit_code: Option<i32>,
    started_at: Option<String>,
    finished_at: Option<String>,
    logs: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct CredentialResults {
    #[serde(default)]
    pub(crate) kubeconfigs: Vec<CredentialEntry>,
}

#[derive(Deserialize)]
pub(crate) struct CredentialEntry {
    pub(crate) name: Option<String>,
    pub(crate) value: Option<String>,
}

pub(crate) fn into_kubeconfigs(
    entries: Vec<CredentialEntry>,
    operation: &'static str,
) -> Result<Vec<KubeconfigCredential>, ArmError> {
    entries
        .into_iter()
        .map(|e| match e.value {
            Some(v) => Ok(KubeconfigCredential {
                name: e.name.unwrap_or_default(),
                value_base64: Secret::new(v),
            }),
            None => Err(ArmError::invalid_response(
                operation,
                "kubeconfig entry without 'value'",
            )),
        })
        .collect()
}

/// The id in a run command `Location`: `…/commandResults/<id>?…`. The rest of the URL is opaque.
pub fn command_id_from_location(location: &str) -> Result<CommandId, String> {
    let lower = location.to_ascii_lowercase();
    let marker = "/commandresults/";
    let start = lower
        .rfind(marker)
        .ok_or_else(|| "Location has no commandResults/<id>".to_string())?
        + marker.len();
    let rest = &location[start..];
    let end = rest.find(['?', '/', '#']).unwrap_or(rest.len());
    CommandId::new(&rest[..end])
}

impl ClusterInfo {
    /// Stopped (`powerState.code` other than `Running`): nothing can run on it.
    pub fn stopped(&self) -> bool {
        self.power_state
            .as_deref()
            .is_some_and(|p| !p.eq_ignore_ascii_case("Running"))
    }
}

impl AksClient {
    pub fn new(arm: ArmClient, api_version: Option<String>) -> Self {
        Self {
            arm,
            api_version: api_version.unwrap_or_else(|| DEFAULT_API_VERSION.to_string()),
            polls: Default::default(),
        }
    }

    pub async fn get_cluster(
        &self,
        ctx: &CallContext,
        id: &AksClusterId,
    ) -> Result<ClusterInfo, ArmError> {
        const OP: &str = "ManagedClusters_Get";
        let resp = self
            .arm
            .send(
                ctx,
                ArmRequest::path(OP, Method::GET, id.to_string(), &self.api_version),
            )
            .await?;
        let body: ClusterBody = expect_json(&resp, OP)?;
        let p = body.properties;
        let aad_tenant_id = p
            .aad_profile
            .as_ref()
            .and_then(|a| a.tenant_id.clone())
            .filter(|t| !t.trim().is_empty());
        Ok(ClusterInfo {
            aad_managed: p.aad_profile.and_then(|a| a.managed).unwrap_or(false),
            aad_tenant_id,
            power_state: p.power_state.and_then(|s| s.code),
            run_command_disabled: p
                .api_server_access_profile
                .and_then(|a| a.disable_run_command)
                .unwrap_or(false),
            provisioning_state: p.provisioning_state,
            fqdn: p.fqdn,
            private_fqdn: p.private_fqdn,
        })
    }

    /// Dispatches `command`. Not retried by callers after an ambiguous failure (see crash safety).
    pub async fn run_command(
        &self,
        ctx: &CallContext,
        id: &AksClusterId,
        command: &str,
        context_b64: Option<String>,
        cluster_token: Option<Secret>,
        budget_reserved: bool,
    ) -> Result<RunCommandAccepted, ArmError> {
        const OP: &str = RUN_COMMAND_OP;
        if command.trim().is_empty() {
            return Err(ArmError::Validation("command is empty".into()));
        }
        let mut body = json!({ "command": command, "context": context_b64.unwrap_or_default() });
        if let Some(token) = cluster_token {
            body["clusterToken"] = json!(token.expose());
        }
        // ARM refuses a request body over 4 MB whole (`RequestContentTooLarge`; azure-cli #22870
        // "Request Entity Too Large"): the command, the token and the JSON count, not only the files.
        let size = body.to_string().len();
        if size > ARM_MAX_BODY_BYTES {
            return Err(ArmError::BodyTooLarge {
                size,
                limit: ARM_MAX_BODY_BYTES,
            });
        }
        let path = format!("{id}/runCommand");
        let resp = self
            .arm
            .send(
                ctx,
                ArmRequest::path(OP, Method::POST, path, &self.api_version)
                    .json(body)
                    .not_idempotent()
                    .prepaid(budget_reserved),
            )
            .await?;
        // Any 2xx is an acceptance: ARM may run the command. What cannot be read of the answer is
        // recovered where possible (a bad Retry-After is ignored) and never a reason to send again.
        let status = resp.status;
        let unreadable = |m: String| ArmError::AcceptedUnreadable {
            operation: OP,
            message: format!("its HTTP {status} answer {m}"),
        };
        let location = resp
            .headers
            .get("location")
            .ok_or_else(|| unreadable("has no Location".into()))?
            .to_str()
            .map_err(|_| unreadable("has a Location that is not ASCII".into()))?;
        let command_id = command_id_from_location(location)
            .map_err(|e| unreadable(format!("has an unusable Location ({e})")))?;
        let location = resp
            .url
            .join(location)
            .map_err(|e| unreadable(format!("has an unusable Location ({e})")))?;
        let retry_after = lro::retry_after(&resp.headers, SystemTime::now()).unwrap_or(None);
        self.polls
            .wait(&format!("{id}/commandResults/{command_id}"), retry_after);
        Ok(RunCommandAccepted {
            command_id,
            location,
            retry_after,
        })
    }

    /// One poll of a command's result. A 200 whose state is not terminal is still running.
    pub async fn command_result(
        &self,
        ctx: &CallContext,
        id: &AksClusterId,
        command_id: &CommandId,
    ) -> Result<CommandStatus, ArmError> {
        const OP: &str = "ManagedClusters_GetCommandResult";
        let path = format!("{id}/commandResults/{command_id}");
        if let Some(left) = self.polls.too_early(&path) {
            return Ok(CommandStatus::Running {
                retry_after: Some(left),
                started_at: None,
            });
        }
        let resp = self
            .arm
            .send(
                ctx,
                ArmRequest::path(OP, Method::GET, path.clone(), &self.api_version),
            )
            .await?;
        let invalid = |m: String| ArmError::invalid_response(OP, m);
        let retry_after = lro::retry_after(&resp.headers, SystemTime::now()).map_err(invalid)?;
        self.polls.wait(&path, retry_after);
        if resp.status == 202 {
            // AKS answers in-progress polls with `provisioningState` and, once the pod runs,
            // `startedAt` (azure-cli reads it while it waits); a 202 without a readable body is
            // still "running".
            let started_at = resp
                .json::<ResultBody>(OP)
                .ok()
                .and_then(|b| b.properties)
                .and_then(|p| p.started_at)
                .filter(|t| !t.trim().is_empty());
            return Ok(CommandStatus::Running {
                retry_after,
                started_at,
            });
        }
        let body: ResultBody = expect_json(&resp, OP)?;
        let p = body
            .properties
            .ok_or_else(|| invalid("command result without 'properties'".into()))?;
        let state = p
            .provisioning_state
            .ok_or_else(|| invalid("command result without provisioningState".into()))?;
        let succeeded = match operation_state(&state) {
            OperationState::Running => {
                return Ok(CommandStatus::Running {
                    retry_after,
                    started_at: p.started_at,
                });
            }
            OperationState::Succeeded => true,
            OperationState::Failed | OperationState::Canceled => false,
        };
        self.polls.done(&path);
        Ok(CommandStatus::Finished(RunCommandResult {
            provisioning_state: state,
            succeeded,
            exit_code: p.exit_code,
            started_at: p.started_at,
            finished_at: p.finished_at,
            logs: p.logs.unwrap_or_default(),
            reason: p.reason,
        }))
    }

    /// `listClusterUserCredential`; values stay base64 (decoding is the kubeconfig module's job).
    pub async fn list_cluster_user_credential(
        &self,
        ctx: &CallContext,
        id: &AksClusterId,
        server_fqdn: Option<&str>,
        format: Option<CredentialFormat>,
    ) -> Result<Vec<KubeconfigCredential>, ArmError> {
        const OP: &str = "ManagedClusters_ListClusterUserCredentials";
        let mut req = ArmRequest::path(
            OP,
            Method::POST,
            format!("{id}/listClusterUserCredential"),
            &self.api_version,
        );
        if let Some(fqdn) = server_fqdn {
            req = req.query("server-fqdn", fqdn);
        }
        if let Some(format) = format {
            req = req.query(
                "format",
                if format == CredentialFormat::Exec {
                    "exec"
                } else {
                    "azure"
                },
            );
        }
        self.list_credentials(ctx, req, OP).await
    }

    pub async fn list_cluster_admin_credential(
        &self,
        ctx: &CallContext,
        id: &AksClusterId,
        server_fqdn: Option<&str>,
    ) -> Result<Vec<KubeconfigCredential>, ArmError> {
        const OP: &str = "ManagedClusters_ListClusterAdminCredentials";
        let mut req = ArmRequest::path(
            OP,
            Method::POST,
            format!("{id}/listClusterAdminCredential"),
            &self.api_version,
        );
        if let Some(fqdn) = server_fqdn {
            req = req.query("server-fqdn", fqdn);
        }
        self.list_credentials(ctx, req, OP).await
    }

    async fn list_credentials(
        &self,
        ctx: &CallContext,
        req: ArmRequest,
        op: &'static str,
    ) -> Result<Vec<KubeconfigCredential>, ArmError> {
        let resp = self.arm.send(ctx, req).await?;
        let body: CredentialResults = expect_json(&resp, op)?;
        into_kubeconfigs(body.kubeconfigs, op)
    }
}

/// The run command `context`: base64 (no line breaks) of a zip holding `files` at their paths.
/// Paths must be relative, without `..`, `.` or empty segments, and unique.
pub fn build_context(
    files: Vec<(String, Vec<u8>)>,
    max_encoded_bytes: usize,
) -> Result<String, ArmError> {
    let mut seen = HashSet::new();
    for (path, _) in &files {
        validate_context_path(path)?;
        if !seen.insert(path.as_str()) {
            return Err(ArmError::Validation(format!(
                "file path '{path}' is given twice"
            )));
        }
    }
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let zip_err = |e: &dyn fmt::Display| ArmError::Validation(format!("building the zip: {e}"));
    for (path, bytes) in &files {
        writer
            .start_file(path.as_str(), options)
            .map_err(|e| zip_err(&e))?;
        writer.write_all(bytes).map_err(|e| zip_err(&e))?;
    }
    let zipped = writer.finish().map_err(|e| zip_err(&e))?.into_inner();
    let encoded_len = zipped.len().div_ceil(3) * 4;
    if encoded_len > max_encoded_bytes {
        return Err(ArmError::ContextTooLarge {
            size: encoded_len,
            limit: max_encoded_bytes,
        });
    }
    Ok(STANDARD.encode(zipped))
}

fn validate_context_path(path: &str) -> Result<(), ArmError> {
    let reject = |why: &str| Err(ArmError::Validation(format!("file path '{path}' {why}")));
    if path.is_empty() {
        return reject("is empty");
    }
    if path.starts_with('/') || path.contains('\\') || path.as_bytes().get(1) == Some(&b':') {
        return reject("must be relative (no leading '/', no '\\', no drive letter)");
    }
    if path.chars().any(char::is_control) {
        return reject("contains control characters");
    }
    for segment in path.split('/') {
        match segment {
            "" => return reject("has an empty segment"),
            "." | ".." => return reject("must not contain '.' or '..' segments"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "aks_tests.rs"]
mod tests;
