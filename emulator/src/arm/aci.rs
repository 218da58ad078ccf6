//! Microsoft.ContainerInstance containers: `exec` (hands out a websocket session) and `logs`.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::path::RgScope;
use super::{Ctx, arm_error, require_rg, resource_not_found};
use crate::aci_ws::ExecSession;
use crate::world::Container;

pub async fn handle(ctx: &Ctx, scope: &RgScope, group: &str, container: &str) -> Response {
    if let Err(r) = require_rg(ctx, scope) {
        return r;
    }
    let Some(cg) = ctx.world.container_group(&scope.sub, &scope.rg, group) else {
        return resource_not_found(
            "Microsoft.ContainerInstance/containerGroups",
            group,
            &scope.rg,
        );
    };
    let Some(c) = cg
        .containers
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(container))
    else {
        // ACI's own CloudError shape.
        return arm_error(
            StatusCode::NOT_FOUND,
            "ContainerNotFound",
            format!(
                "The container '{container}' is not found in container group '{}'.",
                cg.name
            ),
        );
    };
    if ctx.op == "aci.exec" {
        if let Err(r) = super::container_group::require_running(cg, &scope.rg) {
            return r;
        }
        exec(ctx, &cg.name, c)
    } else {
        logs(ctx, c)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ExecRequest {
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    terminal_size: Option<TerminalSize>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct TerminalSize {
    #[serde(default)]
    rows: Option<u32>,
    #[serde(default)]
    cols: Option<u32>,
}

fn exec(ctx: &Ctx, group: &str, c: &Container) -> Response {
    let req: ExecRequest = match serde_json::from_slice(&ctx.body) {
        Ok(r) => r,
        Err(e) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            );
        }
    };
    let Some(command) = req.command.filter(|c| !c.is_empty()) else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidContainerExecRequest",
            "The exec request must specify a command.",
        );
    };
    let size = req.terminal_size.unwrap_or_default();
    let session = crate::state::random_hex();
    let password = crate::state::random_token();
    let record = ExecSession {
        id: session.clone(),
        password: password.clone(),
        command,
        rows: size.rows,
        cols: size.cols,
        container_group: group.to_string(),
        container: c.name.clone(),
        start_delay: c
            .exec_start_seconds
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64),
        expires: Instant::now() + ctx.state.settings.exec_session_ttl,
        used: false,
    };
    {
        let mut sessions = ctx.state.exec_sessions.lock().expect("sessions lock");
        let now = Instant::now();
        // Forget sessions ten minutes after they expired (used or not); keeps the control API small.
        sessions.retain(|_, s| s.expires + Duration::from_secs(600) > now);
        sessions.insert(session.clone(), record);
    }
    // On the exec listener's own host and port, in ACI's path shape (`…:19390/execstream/…`).
    let uri = format!("{}/execstream/{session}", ctx.state.settings.exec_base);
    axum::Json(json!({"webSocketUri": uri, "password": password})).into_response()
}

fn logs(ctx: &Ctx, c: &Container) -> Response {
    let tail = ctx.query.get("tail").and_then(|t| t.parse::<usize>().ok());
    let stamps = ctx
        .query
        .get("timestamps")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let skip = tail.map_or(0, |t| c.logs.len().saturating_sub(t));
    let mut content = String::new();
    for (i, line) in c.logs.iter().enumerate().skip(skip) {
        if stamps {
            let t = ctx.state.started + Duration::from_millis(250 * i as u64);
            content.push_str(&crate::state::rfc3339_nanos(t));
            content.push(' ');
        }
        content.push_str(line);
        content.push('\n');
    }
    axum::Json(json!({"content": content})).into_response()
}
