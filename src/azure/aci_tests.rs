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

/// One message the client sent after the password: binary or text, its bytes, when it came.
type Frame = (bool, Vec<u8>, std::time::Instant);

#[derive(Default)]
struct Fake {
    exec_bodies: Mutex<Vec<Value>>,
    log_queries: Mutex<Vec<std::collections::HashMap<String, String>>>,
    frames: Mutex<Vec<Frame>>,
}

async fn exec(State(f): State<Arc<Fake>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    use axum::response::IntoResponse;
    let host = headers["host"].to_str().unwrap().to_string();
    let command = body["command"].as_str().unwrap_or_default().to_string();
    f.exec_bodies.lock().unwrap().push(body);
    let refuse = |status: u16, code: &str| {
        let status = axum::http::StatusCode::from_u16(status).unwrap();
        (
            status,
            Json(serde_json::json!({"error": {"code": code, "message": "no"}})),
        )
            .into_response()
    };
    let kind = match command.as_str() {
        "/bin/sh" => "shell",
        "/bin/hang" => "hang",
        // A shell whose socket is gone once the password is in.
        "/bin/gone" => "gone",
        // A session whose websocket handshake is refused.
        "/bin/nosocket" => "missing",
        "/bin/refused" => return refuse(409, "Conflict"),
        "/bin/broken" => return refuse(500, "InternalServerError"),
        "/bin/elsewhere" => {
            // A hostile or broken answer: the session on another host.
            return Json(
                serde_json::json!({"webSocketUri": "ws://attacker.example/ws/direct", "password": "pw-123"}),
            )
            .into_response();
        }
        _ => "direct",
    };
    Json(
        serde_json::json!({"webSocketUri": format!("ws://{host}/ws/{kind}"), "password": "pw-123"}),
    )
    .into_response()
}

async fn logs(
    State(f): State<Arc<Fake>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    f.log_queries.lock().unwrap().push(q);
    Json(serde_json::json!({"content": "line1\nline2\n"}))
}

/// Like the service: an empty message as soon as the socket is open (azure-cli PR #16000), then
/// the password must be the first text frame.
async fn first_is_password(socket: &mut WebSocket) -> bool {
    let _ = socket.send(WsMessage::Text("".into())).await;
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

async fn ws_gone(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        let _ = first_is_password(&mut socket).await;
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
async fn ws_shell(State(f): State<Arc<Fake>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        if !first_is_password(&mut socket).await {
            return;
        }
        let _ = socket.send(WsMessage::Binary(Vec::new().into())).await;
        let _ = socket.send(WsMessage::Text("\x1b[?2004h/ # ".into())).await;
        let mut pending = Vec::new();
        let mut marker = String::new();
        let mut rc = 0;
        while let Some(Ok(msg)) = socket.recv().await {
            let (binary, bytes) = match msg {
                WsMessage::Text(t) => (false, t.as_str().as_bytes().to_vec()),
                WsMessage::Binary(b) => (true, b.to_vec()),
                _ => continue,
            };
            f.frames
                .lock()
                .unwrap()
                .push((binary, bytes.clone(), std::time::Instant::now()));
            pending.extend_from_slice(&bytes);
            while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = pending.drain(..=nl).collect();
                let line = String::from_utf8(raw).expect("typed lines are UTF-8");
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
                } else if line == "sleep 100" {
                    // A command that outlives the test's deadline.
                    tokio::time::sleep(Duration::from_secs(30)).await;
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
        .route("/ws/gone", get(ws_gone))
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
        ArmError::Validation(message) => {
            assert!(message.contains("not an ACI exec host"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_wss_is_accepted_from_an_https_arm() {
    let cloud = crate::azure::Cloud::AzurePublicCloud;
    let arm = cloud.arm_endpoint();
    for good in [
        "wss://bridge-linux-1.eastus.management.azurecontainer.io/exec/1?t=x",
        "wss://a1b2c3.westeurope.atlas.cloudapp.azure.com:19390/execstream/1?t=x",
    ] {
        assert!(check_websocket_uri(good, &cloud, &arm).is_ok(), "{good}");
    }
    assert!(
        check_websocket_uri(
            "ws://b.eastus.management.azurecontainer.io/exec/1",
            &cloud,
            &arm
        )
        .is_err()
    );
    // A customer's container group, under the same suffix, is never an exec endpoint.
    assert!(
        check_websocket_uri("wss://myapp.eastus.azurecontainer.io/exec/1", &cloud, &arm).is_err()
    );
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

/// The replica loses the leader Lease while the shell comes up (after the exec POST went out):
/// the command is never typed, and the failure says it was not sent, so the intent is rolled back.
#[tokio::test]
async fn a_fence_that_falls_before_typing_types_nothing() {
    let (aci, f) = fake().await;
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    let mut c = ctx(Duration::from_secs(10));
    // Holds for the exec POST, then falls.
    c.fence = Some(Arc::new(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
    }));
    let err = aci
        .run_session(
            &c,
            &id(),
            "app",
            "ls /nope; echo done",
            Some("/bin/sh"),
            &limits(10),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.error, ArmError::Fenced { .. }),
        "{:?}",
        err.error
    );
    assert!(!err.command_sent);
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 2);
    let typed: Vec<u8> = f
        .frames
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, bytes, _)| bytes.clone())
        .collect();
    let typed = String::from_utf8_lossy(&typed);
    assert!(
        typed.contains(":ready"),
        "the setup line is typed: {typed:?}"
    );
    assert!(
        !typed.contains("ls /nope"),
        "the command was typed: {typed:?}"
    );
}

#[tokio::test]
async fn a_session_that_ends_before_the_status_line_is_interrupted() {
    let (aci, _) = fake().await;
    let c = ctx(Duration::from_secs(10));
    // The pretend shell closes the socket as soon as `exit 3` is typed, like a session cut short.
    let out = aci
        .run(&c, &id(), "app", "exit 3", Some("/bin/sh"), &limits(10))
        .await
        .unwrap();
    assert_eq!(out.exit_code, None);
    assert!(out.interrupted, "{out:?}");
    let done = aci
        .run(&c, &id(), "app", "false", Some("/bin/sh"), &limits(10))
        .await
        .unwrap();
    assert!(!done.interrupted, "{done:?}");
    // Without a shell there is nothing to tell a cut from an exit.
    let direct = aci
        .run(&c, &id(), "app", "/bin/date", None, &limits(10))
        .await
        .unwrap();
    assert!(!direct.interrupted);
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

#[test]
fn input_frames_keep_characters_whole() {
    let text = "ab\u{e9}\u{2713}\u{1F600}cd";
    for max in [4, 5, 6, 7, 50] {
        let frames = input_frames(text, max);
        assert_eq!(frames.concat(), text);
        assert!(
            frames.iter().all(|f| !f.is_empty() && f.len() <= max),
            "{max}: {frames:?}"
        );
    }
    // 5 bytes: "ab" + the first byte of "é" would split it, so the frame stops before it.
    assert_eq!(input_frames(text, 5)[0], "ab\u{e9}");
    assert_eq!(input_frames(&"x".repeat(120), 50).len(), 3);
    assert!(input_frames("", 50).is_empty());
}

#[tokio::test]
async fn input_is_typed_in_small_paced_binary_messages() {
    let (aci, f) = fake().await;
    let command = format!(
        "echo {}\necho done",
        "h\u{e9}llo w\u{f6}rld \u{2713} ".repeat(30)
    );
    aci.run(
        &ctx(Duration::from_secs(20)),
        &id(),
        "app",
        &command,
        Some("/bin/sh"),
        &limits(20),
    )
    .await
    .unwrap();
    let frames = f.frames.lock().unwrap().clone();
    assert!(
        frames.len() > command.len() / INPUT_FRAME_BYTES,
        "{} frames",
        frames.len()
    );
    for (binary, bytes, _) in &frames {
        assert!(*binary, "input goes as binary messages");
        assert!(bytes.len() <= INPUT_FRAME_BYTES, "{} bytes", bytes.len());
        assert!(
            std::str::from_utf8(bytes).is_ok(),
            "a character was split: {bytes:?}"
        );
    }
    let typed: Vec<u8> = frames.iter().flat_map(|(_, b, _)| b.clone()).collect();
    assert!(String::from_utf8(typed).unwrap().contains(&command));
    // Paced: the messages are spread over time, not sent in one burst.
    let span = frames.last().unwrap().2 - frames[0].2;
    let pauses = INPUT_FRAME_PAUSE * (frames.len() as u32 - 1);
    assert!(span >= pauses / 2, "{span:?} for {} frames", frames.len());
}

#[tokio::test]
async fn a_failed_session_tells_whether_the_command_may_have_started() {
    let (aci, _) = fake().await;
    let c = ctx(Duration::from_secs(10));
    // (command, shell, command_sent)
    let cases: [(&str, Option<&str>, bool); 9] = [
        // Refused before anything ran.
        ("ls -l", None, false),
        ("/bin/refused", None, false),
        ("true", Some("/bin/refused"), false),
        // A 500 may hide a processed POST: directly, the executable may be running.
        ("/bin/broken", None, true),
        // With a shell only the shell may be running; the command was never typed.
        ("true", Some("/bin/broken"), false),
        // ARM answered: ACI started the executable, even if we cannot (or must not) join it.
        ("/bin/elsewhere", None, true),
        ("/bin/nosocket", None, true),
        // With a shell, nothing was typed yet.
        ("true", Some("/bin/nosocket"), false),
        ("true", Some("/bin/gone"), false),
    ];
    for (command, shell, sent) in cases {
        let err = aci
            .run_session(&c, &id(), "app", command, shell, &limits(10))
            .await
            .unwrap_err();
        assert_eq!(err.command_sent, sent, "{command} {shell:?}: {err}");
    }
}

#[tokio::test]
async fn a_timeout_after_typing_counts_as_sent() {
    let (aci, _) = fake().await;
    // The pretend shell never answers `sleep`: the deadline passes after the command was typed.
    let err = aci
        .run_session(
            &ctx(Duration::from_secs(10)),
            &id(),
            "app",
            "sleep 100",
            Some("/bin/sh"),
            &limits(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err.error, ArmError::Timeout { .. }), "{err:?}");
    assert!(err.command_sent);
}

#[test]
fn session_errors_show_no_secrets() {
    let e = SessionError {
        error: ArmError::Timeout {
            operation: "ContainerExecSession",
            last_error: None,
        },
        command_sent: true,
    };
    let shown = format!("{e} {e:?}");
    assert!(
        shown.contains("may have started") && shown.contains("command_sent: true"),
        "{shown}"
    );
    assert!(
        !shown.contains("pw-") && !shown.contains("ws://"),
        "{shown}"
    );
}
