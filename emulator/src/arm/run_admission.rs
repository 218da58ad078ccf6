//! What AKS checks before it takes a run command: that the cluster is running, and for an
//! AAD-managed cluster that `clusterToken` is a live token of the AKS AAD server app from the
//! cluster's own tenant — and what becomes of a command whose token runs out while it runs.

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::response::Response;

use super::path::RgScope;
use super::runner::Outcome;
use super::{Ctx, arm_error};
use crate::state::{Audience, TokenInfo};
use crate::world::{ManagedCluster, PowerState};

/// kubectl's words when the API server refuses an expired token.
pub const KUBECTL_UNAUTHORIZED: &str = "error: You must be logged in to the server (Unauthorized)";

/// A stopped cluster keeps `provisioningState: Succeeded` and refuses actions with 400
/// "… is in (Succeeded,Stopped) state" (Azure/AKS #1871). That run command answers exactly this
/// way is not documented: the code and wording are the emulator's reading of it.
pub fn require_running(c: &ManagedCluster) -> Result<(), Response> {
    if c.power_state == PowerState::Running {
        return Ok(());
    }
    Err(arm_error(
        StatusCode::BAD_REQUEST,
        "OperationNotAllowed",
        format!(
            "Managed cluster '{}' is in (Succeeded,Stopped) state; run command cannot be performed on a stopped cluster. Start the cluster first.",
            c.name
        ),
    ))
}

/// The tenant an AAD-managed cluster trusts (`properties.aadProfile.tenantID`).
pub fn aad_tenant(ctx: &Ctx, scope: &RgScope, c: &ManagedCluster) -> String {
    c.aad_tenant_id.clone().unwrap_or_else(|| {
        ctx.world
            .subscription(&scope.sub)
            .map(|s| ctx.world.subscription_tenant(s))
            .unwrap_or_default()
    })
}

/// Checks `clusterToken`: present, issued by the emulator, live, for the AKS AAD server app, and
/// from the cluster's tenant (a token of another tenant is refused, saying which tenants).
pub fn cluster_token(
    ctx: &Ctx,
    scope: &RgScope,
    c: &ManagedCluster,
    token: Option<&str>,
) -> Result<TokenInfo, Response> {
    let bad = |msg: &str| arm_error(StatusCode::BAD_REQUEST, "InvalidClusterToken", msg);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(arm_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "clusterToken is required for AAD-managed clusters: get a token for '6dae42f8-4368-4678-94ff-3960e28e3630/.default' and pass it as clusterToken.",
        ));
    };
    let info = ctx
        .state
        .tokens
        .lock()
        .expect("tokens lock")
        .get(token)
        .cloned();
    let Some(info) = info else {
        return Err(bad("clusterToken is not a valid access token."));
    };
    if info.expires_at <= SystemTime::now() {
        return Err(bad("clusterToken has expired."));
    }
    if info.audience != Audience::AksServer {
        return Err(bad(
            "clusterToken has the wrong audience; it must be issued for the AKS AAD server application 6dae42f8-4368-4678-94ff-3960e28e3630.",
        ));
    }
    let tenant = aad_tenant(ctx, scope, c);
    if !info.tenant_id.eq_ignore_ascii_case(&tenant) {
        return Err(bad(&format!(
            "clusterToken was issued by tenant '{}', but managed cluster '{}' trusts tenant '{tenant}' (properties.aadProfile.tenantID): get the token from that tenant.",
            info.tenant_id, c.name
        )));
    }
    Ok(info)
}

/// The command's kubectl uses the token for the whole run (the emulator's model): one that
/// expires before the command can finish (`commandDuration`) ends it as a failed result, started,
/// with kubectl's "Unauthorized" as its logs.
pub fn expires_during(token: &TokenInfo, duration: Duration) -> Option<Outcome> {
    let finish = SystemTime::now() + duration;
    if token.expires_at >= finish {
        return None;
    }
    tracing::warn!(
        client = %token.client_id,
        expires_at = %crate::state::rfc3339(token.expires_at),
        duration_seconds = duration.as_secs_f64(),
        "clusterToken expires before the run command can finish: its kubectl gets Unauthorized, the result is Failed"
    );
    Some(Outcome::Failed {
        reason: "ClusterTokenExpired".into(),
        message: Some(format!(
            "{KUBECTL_UNAUTHORIZED}\n(kubeinvoke-emulator: the clusterToken expired at {} before the command finished)\n",
            crate::state::rfc3339(token.expires_at)
        )),
        started: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(lifetime: u64) -> TokenInfo {
        TokenInfo {
            client_id: "c".into(),
            object_id: "o".into(),
            tenant_id: "t".into(),
            audience: Audience::AksServer,
            expires_at: SystemTime::now() + Duration::from_secs(lifetime),
        }
    }

    #[test]
    fn a_token_that_outlives_the_command_is_fine() {
        assert!(expires_during(&token(3600), Duration::from_secs(5)).is_none());
        let Some(Outcome::Failed {
            message, started, ..
        }) = expires_during(&token(2), Duration::from_secs(30))
        else {
            panic!("a token expiring mid-run fails the command");
        };
        assert!(started);
        assert!(message.unwrap().contains("(Unauthorized)"));
    }

    #[test]
    fn stopped_clusters_refuse() {
        let c = ManagedCluster {
            name: "x".into(),
            power_state: PowerState::Stopped,
            ..Default::default()
        };
        assert_eq!(
            require_running(&c).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        assert!(require_running(&ManagedCluster::default()).is_ok());
    }
}
