use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::Value;

use super::*;
use crate::azure::testutil::{self, ctx, serve};

const GROUP: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/cg1";

#[derive(Default)]
struct Fake {
    exec_bodies: Mutex<Vec<Value>>,
    log_queries: Mutex<Vec<std::collections::HashMap<String, String>>>,
}

async fn exec(
    State(f): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let host = headers["host"].to_str().unwrap().to_string();
    let kind = match body["command"].as_str() {
        Some("/bin/sh") => "shell",
        Some("/bin/hang") => "hang",
        Some("/bin/elsewhere") => {
            // A hostile or broken answer: the session on another host.
            f.exec_bodies.lock().unwrap().push(body);
            return Json(
                serde_json::json!({"webSocketUri": "ws://attacker.example/ws/direct", "password": "pw-123"}),
            );
        }
        _ => "direct",
    };
    f.exec_bodies.lock().unwrap().push(body);
    Json(
        serde_json::json!({"webSocketUri": format!("ws://{host}/ws/{kind}"), "password": "pw-123"}),
    )
}

async fn logs(
    State(f): State<Arc<Fake>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    f.log_queries.lock().unwrap().push(q);
    Json(serde_json::json!({"content": "line1\nline2\n"}))
}

async fn first_is_password(socket: &mut WebSocket) -> bool {
    matches!(socket.recv().await, Some(Ok(WsMessage::Text(t))) if t.as_str() == "pw-123")
}

async fn close(mut socket: WebSocket) {
    let _ = socket
        .send(WsMessage::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}

async fn ws_direct(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        if !first_is_password(&mut socket).await {
            return;
        }
        let _ = socket.send(WsMessage::Text("hello\r\n".into())).await;
        let _ = socket
            .send(WsMessage::Binary(
                "\x1b[32mworld\x1b[0m\r\n".as_bytes().to_vec().into(),
            ))
            .await;
        close(socket).await;
    })
}

async fn ws_hang(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        let _ = first_is_password(&mut socket).await;
        let _ = socket
            .send(WsMessage::Text("still running\r\n".into()))
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
}

/// Single-quoted words of a typed line.
fn quoted(line: &str) -> Vec<String> {
    line.split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// A pretend interactive `sh` on a PTY whose `stty` is missing: it echoes everything typed.
async fn ws_shell(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        if !first_is_password(&mut socket).await {
            return;
        }
        let _ = socket.send(WsMessage::Text("\x1b[?2004h/ # ".into())).await;
        let mut pending = String::new();
        let mut marker = String::new();
        let mut rc = 0;
        while let Some(Ok(msg)) = socket.recv().await {
            let WsMessage::Text(t) = msg else { continue };
            pending.push_str(t.as_str());
            while let Some(nl) = pending.find('\n') {
                let line: String = pending.drain(..=nl).collect();
                let line = line.trim_end_matches('\n');
                let mut reply = format!("{line}\r\n\x1b[?2004l");
                if line.contains(":ready") {
                    let q = quoted(line);
                    marker = format!("{}{}", q[q.len() - 2], q[q.len() - 1]);
                    reply.push_str("sh: stty: not found\r\n");
                    reply.push_str(&format!("{marker}:ready\r\n"));
                } else if line.starts_with("printf '\\n%s%s:%s") {
                    reply.push_str(&format!("\r\n{marker}:{rc}\r\n"));
                } else if line == "exit" {
                    let _ = socket.send(WsMessage::Text(reply.into())).await;
                    close(socket).await;
                    return;
                } else if line == "ls /nope; echo done" {
                    reply.push_str("ls: /nope: No such file or directory\r\ndone\r\n");
                    rc = 0;
                } else if line == "false" {
                    rc = 1;
                } else if line == "exit 3" {
                    // The shell exits before the status line is typed.
                    let _ = socket.send(WsMessage::Text(reply.into())).await;
                    close(socket).await;
                    return;
                }
                reply.push_str("\x1b[?2004h/ # ");
                let _ = socket.send(WsMessage::Text(reply.into())).await;
            }
        }
    })
}

async fn fake() -> (AciClient, Arc<Fake>) {
    let f = Arc::new(Fake::default());
    let base_path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups/{cg}/containers/{c}";
    let router = Router::new()
        .route(&format!("{base_path}/exec"), post(exec))
        .route(&format!("{base_path}/logs"), get(logs))
        .route("/ws/direct", get(ws_direct))
        .route("/ws/shell", get(ws_shell))
        .route("/ws/hang", get(ws_hang))
        .with_state(f.clone());
    let base = serve(router).await;
    let tls = websocket_tls_config(None).unwrap();
    (AciClient::new(testutil::client(&base), None, tls), f)
}

fn id() -> ContainerGroupId {
    GROUP.parse().unwrap()
}

fn limits(secs: u64) -> SessionLimits {
    SessionLimits::new(Instant::now() + Duration::from_secs(secs))
}

#[tokio::test]
async fn direct_exec_reads_until_close_without_exit_code() {
    let (aci, f) = fake().await;
    let out = aci
        .run(
            &ctx(Duration::from_secs(10)),
            &id(),
            "app",
            "/bin/date",
            None,
            &limits(10),
        )
        .await
        .unwrap();
    assert_eq!(out.output, "hello\nworld\n");
    assert_eq!(out.exit_code, None);
    assert!(!out.truncated);
    let body = f.exec_bodies.lock().unwrap()[0].clone();
    assert_eq!(body["command"], "/bin/date");
    assert_eq!(
        body["terminalSize"],
        serde_json::json!({"rows": 200, "cols": 4000})
    );
}

#[tokio::test]
async fn direct_exec_rejects_whitespace_before_calling_arm() {
    let (aci, f) = fake().await;
    let err = aci
        .run(
            &ctx(Duration::from_secs(10)),
            &id(),
            "app",
            "ls -l /",
            None,
            &limits(10),
        )
        .await
        .unwrap_err();
    match err {
        ArmError::Validation(m) => assert!(m.contains("set `shell`"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(f.exec_bodies.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_websocket_outside_the_cloud_is_never_joined() {
    let (aci, _f) = fake().await;
    let err = aci
        .run(
            &ctx(Duration::from_secs(10)),
            &id(),
            "app",
            "/bin/elsewhere",
            None,
            &limits(10),
        )
        .await
        .unwrap_err();
    match err {
        ArmError::InvalidResponse { message, .. } => {
            assert!(message.contains("outside"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_wss_is_accepted_from_an_https_arm() {
    let cloud = crate::azure::Cloud::AzurePublicCloud;
    let arm = cloud.arm_endpoint();
    assert!(
        check_websocket_uri("wss://b.eastus.azurecontainer.io/exec/1?t=x", &cloud, &arm).is_ok()
    );
    assert!(check_websocket_uri("ws://b.eastus.azurecontainer.io/exec/1", &cloud, &arm).is_err());
    assert!(check_websocket_uri("wss://evil.example/exec/1", &cloud, &arm).is_err());
    assert!(check_websocket_uri("not a url", &cloud, &arm).is_err());
}

#[tokio::test]
async fn shell_exec_strips_echo_and_reports_exit_code() {
    let (aci, f) = fake().await;
    let c = ctx(Duration::from_secs(10));
    let out = aci
        .run(
            &c,
            &id(),
            "app",
            "ls /nope; echo done",
            Some("/bin/sh"),
            &limits(10),
        )
        .await
        .unwrap();
    assert_eq!(out.output, "ls: /nope: No such file or directory\ndone\n");
    assert_eq!(out.exit_code, Some(0));
    let out = aci
        .run(&c, &id(), "app", "false", Some("/bin/sh"), &limits(10))
        .await
        .unwrap();
    assert_eq!(out.output, "");
    assert_eq!(out.exit_code, Some(1));
    assert_eq!(f.exec_bodies.lock().unwrap()[0]["command"], "/bin/sh");
}

#[tokio::test]
async fn shell_that_exits_early_has_no_exit_code() {
    let (aci, _) = fake().await;
    let out = aci
        .run(
            &ctx(Duration::from_secs(10)),
            &id(),
            "app",
            "exit 3",
            Some("/bin/sh"),
            &limits(10),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, None);
}

#[tokio::test]
async fn session_stops_at_the_deadline() {
    let (aci, _) = fake().await;
    let started = std::time::Instant::now();
    let err = aci
        .run(
            &ctx(Duration::from_secs(10)),
            &id(),
            "app",
            "/bin/hang",
            None,
            &limits(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ArmError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn output_is_capped_keeping_the_tail() {
    let (aci, _) = fake().await;
    let mut l = limits(10);
    // The cap applies to the raw terminal stream (23 bytes here).
    l.max_output_bytes = 20;
    let out = aci
        .run(
            &ctx(Duration::from_secs(10)),
            &id(),
            "app",
            "/bin/date",
            None,
            &l,
        )
        .await
        .unwrap();
    assert!(out.truncated);
    assert!(
        out.output.ends_with("world\n") && !out.output.contains("hello"),
        "{:?}",
        out.output
    );
}

#[tokio::test]
async fn logs_pass_tail_and_timestamps() {
    let (aci, f) = fake().await;
    let content = aci
        .logs(&ctx(Duration::from_secs(10)), &id(), "app", Some(50), true)
        .await
        .unwrap();
    assert_eq!(content, "line1\nline2\n");
    let q = f.log_queries.lock().unwrap()[0].clone();
    assert_eq!(q["tail"], "50");
    assert_eq!(q["timestamps"], "true");
    assert_eq!(q["api-version"], "2025-09-01");
}

#[test]
fn secrets_are_redacted() {
    let e = ExecEndpoint {
        web_socket_uri: Secret::new("wss://x/?token=abc"),
        password: Secret::new("pw"),
    };
    let s = format!("{e:?}");
    assert!(!s.contains("abc") && !s.contains("pw"), "{s}");
    assert!(websocket_tls_config(Some(b"not a pem")).is_err());
}
