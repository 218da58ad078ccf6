//! Microsoft.ContainerService/managedClusters: GET, runCommand + commandResults, list*Credential.

use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::kubeconfig::{self, Doc, User};
use super::path::RgScope;
use super::run_admission;
use super::runner::{self, CommandRecord, Outcome};
use super::{Ctx, arm_error};
use crate::state::rfc3339;
use crate::world::{ManagedCluster, PowerState};

fn cluster_path(scope: &RgScope, c: &ManagedCluster) -> String {
    // AKS reports ids with a lower-case `resourcegroups` segment.
    format!(
        "/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
        scope.sub, scope.rg, c.name
    )
}

fn location(ctx: &Ctx, scope: &RgScope, c: &ManagedCluster) -> String {
    c.location.clone().unwrap_or_else(|| {
        ctx.world
            .resource_group(&scope.sub, &scope.rg)
            .map(|g| g.location.clone())
            .unwrap_or_else(|| "westeurope".into())
    })
}

fn default_fqdn(c: &ManagedCluster, loc: &str) -> String {
    let hash: String = crate::world::derived_object_id(&format!("{}{}", c.name, loc))
        .chars()
        .filter(|ch| ch.is_ascii_hexdigit())
        .take(8)
        .collect();
    let private = if c.private_cluster {
        ".privatelink"
    } else {
        ""
    };
    format!("{}-dns-{hash}{private}.hcp.{loc}.azmk8s.io", c.name)
}

pub fn get(ctx: &Ctx, scope: &RgScope, c: &ManagedCluster) -> Response {
    axum::Json(body(ctx, scope, c)).into_response()
}

/// The cluster as `GET` shows it, and as each item of a list shows it (the swagger's list result
/// holds `ManagedCluster` items: aks/stable/2025-10-01/examples/ManagedClustersList.json).
pub fn body(ctx: &Ctx, scope: &RgScope, c: &ManagedCluster) -> serde_json::Value {
    let loc = location(ctx, scope, c);
    let fqdn = default_fqdn(c, &loc);
    let version = c
        .kubernetes_version
        .clone()
        .unwrap_or_else(|| "1.33.2".into());
    let mut props = json!({
        "provisioningState": "Succeeded",
        // A stopped cluster keeps provisioningState Succeeded (Azure/AKS #1871).
        "powerState": {"code": match c.power_state {
            PowerState::Running => "Running",
            PowerState::Stopped => "Stopped",
        }},
        "kubernetesVersion": version,
        "currentKubernetesVersion": version,
        "dnsPrefix": format!("{}-dns", c.name),
        "fqdn": fqdn,
        "azurePortalFQDN": fqdn.replace(".hcp.", "-portal.hcp."),
        "nodeResourceGroup": format!("MC_{}_{}_{}", scope.rg, c.name, loc),
        "enableRBAC": true,
        "disableLocalAccounts": c.disable_local_accounts,
        "apiServerAccessProfile": {
            "enablePrivateCluster": c.private_cluster,
            "disableRunCommand": c.disable_run_command,
        },
        "agentPoolProfiles": [{"name": "nodepool1", "count": 1, "vmSize": "Standard_D2s_v5", "mode": "System", "osType": "Linux", "provisioningState": "Succeeded"}],
        "networkProfile": {"networkPlugin": "azure", "loadBalancerSku": "standard"},
    });
    if c.private_cluster {
        props["privateFQDN"] = json!(fqdn);
    }
    if c.aad_managed {
        props["aadProfile"] = json!({
            "managed": true,
            "enableAzureRBAC": true,
            "tenantID": run_admission::aad_tenant(ctx, scope, c),
            "adminGroupObjectIDs": null,
        });
    }
    let mut body = json!({
        "id": cluster_path(scope, c),
        "location": loc,
        "name": c.name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "sku": {"name": "Base", "tier": "Free"},
        "identity": {"type": "SystemAssigned"},
        "properties": props,
    });
    if !c.tags.is_empty() {
        body["tags"] = json!(c.tags);
    }
    body
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunCommandRequest {
    #[serde(default)]
    command: String,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    cluster_token: Option<String>,
}

pub async fn run_command(ctx: &Ctx, scope: &RgScope, c: &ManagedCluster) -> Response {
    if let Err(r) = run_admission::require_running(c) {
        return r;
    }
    if c.disable_run_command {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "RunCommandDisabled",
            format!(
                "Run command is disabled for managed cluster '{}' (properties.apiServerAccessProfile.disableRunCommand is true).",
                c.name
            ),
        );
    }
    let req: RunCommandRequest = match serde_json::from_slice(&ctx.body) {
        Ok(r) => r,
        Err(e) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            );
        }
    };
    if req.command.trim().is_empty() {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "The value of parameter command is invalid: it must not be empty.",
        );
    }
    let cluster_token = if c.aad_managed {
        match run_admission::cluster_token(ctx, scope, c, req.cluster_token.as_deref()) {
            Ok(t) => Some(t),
            Err(r) => return r,
        }
    } else {
        None
    };
    let id = crate::state::random_hex();
    let dir = runner::work_dir(&id);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return arm_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            e.to_string(),
        );
    }
    if let Err(msg) = runner::extract_context(req.context.as_deref().unwrap_or(""), &dir) {
        let _ = std::fs::remove_dir_all(&dir);
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The value of parameter context is invalid: {msg}"),
        );
    }
    let key = cluster_path(scope, c).to_ascii_lowercase();
    let attempt = {
        let mut attempts = ctx.state.run_attempts.lock().expect("attempts lock");
        let n = attempts.entry(key.clone()).or_default();
        *n += 1;
        *n
    };
    let failure = c
        .run_command_failure
        .as_ref()
        .filter(|f| f.fail_first.is_none_or(|n| attempt <= n));
    if let Some(f) = failure.filter(|f| f.on_post) {
        let _ = std::fs::remove_dir_all(&dir);
        // AKS holds the POST while it waits for the command pod (about 30 s) before failing it.
        if let Some(secs) = f.block_seconds.filter(|s| *s > 0.0) {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        }
        let status = f
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        return arm_error(
            status,
            &f.reason,
            f.message.clone().unwrap_or_else(|| f.reason.clone()),
        );
    }
    let duration = Duration::from_secs_f64(c.command_duration.unwrap_or(0.0).max(0.0));
    let now = SystemTime::now();
    let pod_target = c
        .command_pod
        .as_ref()
        .and_then(|p| super::command_pod::PodTarget::from_world(&c.kubeconfig, p));
    // An outcome known in advance: a configured failure, or a clusterToken that runs out first.
    let preset = failure
        .map(|f| Outcome::Failed {
            reason: f.reason.clone(),
            message: f.message.clone(),
            started: f.started,
        })
        .or_else(|| {
            cluster_token
                .as_ref()
                .and_then(|t| run_admission::expires_during(t, duration))
        });
    let record = CommandRecord {
        cluster_key: key,
        started_at: now,
        visible_at: Instant::now() + duration,
        min_finished_at: now + duration,
        // A host process starts at once, a pod once it runs (the pod runner reports it).
        started: match &preset {
            Some(Outcome::Failed { started, .. }) => *started,
            _ => pod_target.is_none(),
        },
        outcome: preset.clone(),
    };
    let running = {
        let mut commands = ctx.state.commands.lock().expect("commands lock");
        commands.insert(id.clone(), record);
        let now = Instant::now();
        commands.values().filter(|r| r.visible_at > now).count() as u64
    };
    {
        let mut stats = ctx.state.stats();
        *stats.dispatches.entry(req.command.clone()).or_default() += 1;
        // Commands whose result is not out yet, at most at once: what a fleet's maxConcurrency
        // bounds.
        stats.commands_running_peak = stats.commands_running_peak.max(running);
    }
    // `resultsNotFound`: accepted, but the command pod never runs it (and its result is never
    // found).
    if preset.is_some() || c.results_not_found {
        let _ = std::fs::remove_dir_all(&dir);
    } else if let Some(target) = pod_target {
        // The context was checked by extracting it above; the pod unzips it again itself.
        let _ = std::fs::remove_dir_all(&dir);
        let zip = runner::decode_context(req.context.as_deref().unwrap_or("")).unwrap_or_default();
        runner::spawn_pod(ctx.state.clone(), id.clone(), req.command, zip, target);
    } else {
        runner::spawn(
            ctx.state.clone(),
            id.clone(),
            req.command,
            dir,
            c.command_env.clone(),
        );
    }
    // `acceptAfterSeconds`: the command runs, the answer that says so is slow to come.
    if let Some(secs) = c.accept_after_seconds.filter(|s| *s > 0.0) {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    }
    if c.accept_without_location {
        let mut resp = StatusCode::ACCEPTED.into_response();
        ctx.retry_after().apply(resp.headers_mut());
        return resp;
    }
    accepted(
        ctx,
        &format!("{}/commandResults/{id}", cluster_path(scope, c)),
    )
}

fn accepted(ctx: &Ctx, path: &str) -> Response {
    let mut resp = StatusCode::ACCEPTED.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ctx.url(path)) {
        h.insert("location", v);
    }
    ctx.retry_after().apply(h);
    resp
}

fn result_not_found(id: &str, c: &ManagedCluster) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "Command result '{id}' was not found for managed cluster '{}'.",
            c.name
        ),
    )
}

pub fn command_result(ctx: &Ctx, scope: &RgScope, c: &ManagedCluster, id: &str) -> Response {
    if c.results_not_found {
        // An accepted command whose pod never reached Running has no result: az then prints
        // "Operation returned an invalid status 'Not Found'" (support article "Resolve az aks
        // command invoke failures", cause 1).
        return result_not_found(id, c);
    }
    let key = cluster_path(scope, c).to_ascii_lowercase();
    let record = ctx
        .state
        .commands
        .lock()
        .expect("commands lock")
        .get(&id.to_ascii_lowercase())
        .filter(|r| r.cluster_key == key)
        .cloned();
    let Some(rec) = record else {
        return result_not_found(id, c);
    };
    let started = rfc3339(rec.started_at);
    let outcome = match rec.outcome {
        Some(o) if Instant::now() >= rec.visible_at => o,
        _ => {
            // In progress: 202 + Location + Retry-After *with* a RunCommandResult body, as AKS
            // answers. azure-cli's RunCommandLocationPolling takes the state from this body (an
            // empty one is a BadResponse) and its in-progress helper prints `startedAt` from it.
            let mut props = json!({"provisioningState": "Running"});
            if rec.started {
                props["startedAt"] = json!(started);
            }
            let mut resp = accepted(
                ctx,
                &format!("{}/commandResults/{id}", cluster_path(scope, c)),
            );
            *resp.body_mut() =
                axum::body::Body::from(json!({"id": id, "properties": props}).to_string());
            resp.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return resp;
        }
    };
    // Capitalized, as the service answers (the spec's examples spell them in lower case): az's
    // `_print_command_result` compares with "Succeeded"/"Failed" case-sensitively.
    let props = match outcome {
        Outcome::Finished {
            exit_code,
            logs,
            finished_at,
        } => {
            // With a configured duration the command "finishes" no earlier than that.
            let finished = finished_at.max(rec.min_finished_at);
            json!({"provisioningState": "Succeeded", "exitCode": exit_code, "startedAt": started,
                   "finishedAt": rfc3339(finished), "logs": logs})
        }
        Outcome::Failed {
            reason,
            message,
            started: ran,
        } => {
            // `startedAt` only when the command did start: its absence is how a client tells a
            // command that never ran (safe to send again) from one that ran and failed.
            let mut p = json!({"provisioningState": "Failed", "reason": reason});
            if ran {
                p["startedAt"] = json!(started);
            }
            if let Some(m) = message {
                p["logs"] = json!(m);
            }
            p
        }
    };
    axum::Json(json!({"id": id, "properties": props})).into_response()
}

pub fn list_credential(ctx: &Ctx, scope: &RgScope, c: &ManagedCluster, admin: bool) -> Response {
    if admin && c.disable_local_accounts {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Getting static credential is not allowed because this cluster is set to disable local accounts.",
        );
    }
    let format = ctx.query.get("format").map(|f| f.to_ascii_lowercase());
    if let Some(f) = &format
        && f != "azure"
        && f != "exec"
    {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The value of parameter format is invalid: '{f}' (allowed: azure, exec)."),
        );
    }
    let public = ctx
        .query
        .get("server-fqdn")
        .is_some_and(|v| v.eq_ignore_ascii_case("public"));
    let loc = location(ctx, scope, c);
    let default_server = format!("https://{}:443", default_fqdn(c, &loc));
    let (server, ca_data) = kubeconfig::endpoint(
        &c.kubeconfig,
        public,
        default_server,
        &ctx.state.settings.ca_pem,
    );
    // kubelogin signs in to the cluster's AAD tenant.
    let tenant = run_admission::aad_tenant(ctx, scope, c);
    let (role, context, user) = if admin {
        (
            "clusterAdmin",
            // The context is the cluster's name, as for the user; `az aks get-credentials
            // --admin` appends "-admin" itself (to contexts whose user is clusterAdmin_*).
            c.name.clone(),
            kubeconfig::admin_user(&c.kubeconfig, &c.name),
        )
    } else if c.aad_managed {
        let user = if format.as_deref() == Some("azure") {
            User::AuthProvider { tenant }
        } else {
            User::Exec { tenant }
        };
        ("clusterUser", c.name.clone(), user)
    } else {
        let token = c
            .kubeconfig
            .user_token
            .clone()
            .unwrap_or_else(|| format!("emulator-user-token-{}", c.name));
        ("clusterUser", c.name.clone(), User::Token(token))
    };
    let doc = Doc {
        cluster: &c.name,
        context,
        user_name: format!("{role}_{}_{}", scope.rg, c.name),
        server,
        ca_data,
        user,
    };
    if c.kubeconfig_fault == Some(crate::world::KubeconfigFault::EmptyList) {
        return axum::Json(json!({"kubeconfigs": []})).into_response();
    }
    let value = kubeconfig::encode(&doc, c.kubeconfig_fault);
    axum::Json(json!({"kubeconfigs": [{"name": role, "value": value}]})).into_response()
}
