//! ACI exec over a real websocket client, and container logs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn container_path(container: &str, action: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ContainerInstance/containerGroups/cg1/containers/{container}/{action}"
    )
}

async fn exec(emu: &Emulator, command: &str) -> (String, String) {
    exec_sized(emu, command, 24, 100).await
}

async fn exec_sized(emu: &Emulator, command: &str, rows: u32, cols: u32) -> (String, String) {
    let t = emu.arm_token().await;
    let r = emu
        .http
        .post(emu.url(&format!(
            "{}?api-version=2025-09-01",
            container_path("app", "exec")
        )))
        .bearer_auth(&t)
        .json(&json!({"command": command, "terminalSize": {"rows": rows, "cols": cols}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    (
        v["webSocketUri"].as_str().unwrap().to_string(),
        v["password"].as_str().unwrap().to_string(),
    )
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(emu: &Emulator, uri: &str) -> Ws {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(emu.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(cfg));
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(uri, None, false, Some(connector))
            .await
            .expect("websocket connect");
    ws
}

/// A session of `command` whose password was accepted.
async fn joined(emu: &Emulator, command: &str) -> Ws {
    let (uri, password) = exec(emu, command).await;
    let mut ws = connect(emu, &uri).await;
    ws.send(Message::Text(password.into())).await.unwrap();
    ws
}

/// Reads text until the server closes; returns the text and the close code.
async fn until_close(ws: &mut Ws) -> (String, Option<u16>) {
    let mut text = String::new();
    let read = async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Text(t)) => text.push_str(t.as_str()),
                Ok(Message::Binary(b)) => text.push_str(&String::from_utf8_lossy(&b)),
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(e) => panic!("websocket error: {e}"),
            }
        }
        None
    };
    let code = tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("server closes the socket");
    (text, code)
}

#[tokio::test]
async fn wrong_password_is_closed_1008() {
    let emu = start(&[]);
    let (uri, _) = exec(&emu, "/bin/sh").await;
    let mut ws = connect(&emu, &uri).await;
    ws.send(Message::Text("wrong".into())).await.unwrap();
    let (_, code) = until_close(&mut ws).await;
    assert_eq!(code, Some(1008));
}

#[tokio::test]
async fn shell_session_echoes_and_closes_1000() {
    let emu = start(&[]);
    let (uri, password) = exec(&emu, "sh").await;
    let mut ws = connect(&emu, &uri).await;
    ws.send(Message::Text(password.into())).await.unwrap();
    ws.send(Message::Binary(b"echo out-$((6*7))\r".to_vec().into()))
        .await
        .unwrap();
    ws.send(Message::Text("exit 3\n".into())).await.unwrap();
    let (text, code) = until_close(&mut ws).await;
    assert_eq!(code, Some(1000));
    assert!(text.contains("echo out-$((6*7))\r\n"), "echo: {text:?}");
    assert!(text.contains("out-42\r\n"), "output: {text:?}");
    let sessions: Value = emu
        .http
        .get(emu.url("/_emulator/exec-sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["cols"], 100);
    assert_eq!(emu.counters().await["execSessions"]["sh"], 1);
}

#[tokio::test]
async fn command_with_arguments_fails_like_aci() {
    let emu = start(&[]);
    let (uri, password) = exec(&emu, "ls /").await;
    let mut ws = connect(&emu, &uri).await;
    ws.send(Message::Text(password.into())).await.unwrap();
    let (text, code) = until_close(&mut ws).await;
    assert_eq!(code, Some(1000));
    assert!(
        text.starts_with("rpc error: code = 2 desc = oci runtime error: exec failed"),
        "{text:?}"
    );
    assert!(text.contains(r#"exec: \"ls /\": executable file not found in $PATH"#));
}

#[tokio::test]
async fn logs_tail_and_unknown_container() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let r = emu
        .http
        .get(emu.url(&format!(
            "{}?api-version=2025-09-01&tail=1",
            container_path("app", "logs")
        )))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["content"], "ready\n");
    let r = emu
        .http
        .get(emu.url(&format!(
            "{}?api-version=2025-09-01",
            container_path("nope", "logs")
        )))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "ContainerNotFound");
}

#[tokio::test]
async fn an_empty_message_comes_first_even_before_the_password() {
    let emu = start(&[]);
    let (uri, password) = exec(&emu, "sh").await;
    let mut ws = connect(&emu, &uri).await;
    // Nothing sent yet: the service still says "" first (azure-cli PR #16000).
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a first message")
        .expect("open socket")
        .expect("a message");
    assert_eq!(first, Message::Text("".into()));
    ws.send(Message::Text(password.into())).await.unwrap();
    ws.send(Message::Binary(b"exit\n".to_vec().into()))
        .await
        .unwrap();
    let (_, code) = until_close(&mut ws).await;
    assert_eq!(code, Some(1000));
}

#[tokio::test]
async fn input_beyond_the_message_limit_is_dropped() {
    let emu = start(&[]);
    let mut ws = joined(&emu, "sh").await;
    // 70 bytes in one message: the last 20 (and the newline) are lost, as on the real service.
    let line = format!("echo {}", "a".repeat(64));
    ws.send(Message::Binary(format!("{line}\n").into_bytes().into()))
        .await
        .unwrap();
    ws.send(Message::Binary(b"\nexit\n".to_vec().into()))
        .await
        .unwrap();
    let (text, _) = until_close(&mut ws).await;
    // The shell ran the cut line: its output is 45 of the 64 (a prompt may precede it).
    let kept = "a".repeat(45);
    assert!(
        text.split("\r\n")
            .any(|line| line.trim_start_matches("# ") == kept),
        "{text:?}"
    );
    assert!(!text.contains(&"a".repeat(46)), "{text:?}");
}

#[tokio::test]
async fn a_line_longer_than_the_terminal_takes_is_cut_by_the_kernel() {
    let emu = start(&["--aci-input-message-limit", "100000"]);
    let mut ws = joined(&emu, "sh").await;
    // Canonical mode keeps 4095 characters of a line plus its newline (termios(3)).
    let input = format!("wc -c\n{}\n\x04exit\n", "x".repeat(5000));
    ws.send(Message::Binary(input.into_bytes().into()))
        .await
        .unwrap();
    let (text, code) = until_close(&mut ws).await;
    assert_eq!(code, Some(1000));
    assert!(
        text.contains("\r\n4096\r\n"),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
}

#[tokio::test]
async fn the_terminal_has_the_requested_size() {
    let emu = start(&[]);
    let (uri, password) = exec_sized(&emu, "sh", 33, 4000).await;
    let mut ws = connect(&emu, &uri).await;
    ws.send(Message::Text(password.into())).await.unwrap();
    ws.send(Message::Binary(b"stty size; exit\n".to_vec().into()))
        .await
        .unwrap();
    let (text, _) = until_close(&mut ws).await;
    assert!(text.contains("33 4000\r\n"), "{text:?}");
}

/// Reads until the text so far contains `needle` (deadline 15 s); returns that text.
async fn until_seen(ws: &mut Ws, needle: &str) -> String {
    let mut text = String::new();
    let read = async {
        while !text.contains(needle) {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => text.push_str(t.as_str()),
                Some(Ok(Message::Binary(b))) => text.push_str(&String::from_utf8_lossy(&b)),
                Some(Ok(_)) => {}
                other => panic!("session ended before {needle:?}: {other:?} after {text:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} within 15 s"));
    text
}

#[tokio::test]
async fn ctrl_c_interrupts_the_foreground_command() {
    let emu = start(&[]);
    let mut ws = joined(&emu, "sh").await;
    let started = std::time::Instant::now();
    // The subshell prints once it is the terminal's foreground job; only then is Ctrl-C its.
    ws.send(Message::Binary(
        b"(echo sleeping-$((1+1)); sleep 30)\n".to_vec().into(),
    ))
    .await
    .unwrap();
    until_seen(&mut ws, "sleeping-2\r\n").await;
    for input in ["\x03", "echo after-$((1+1))\n", "exit\n"] {
        ws.send(Message::Binary(input.as_bytes().to_vec().into()))
            .await
            .unwrap();
    }
    let (text, code) = until_close(&mut ws).await;
    assert_eq!(code, Some(1000));
    assert!(text.contains("after-2\r\n"), "{text:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn the_session_cap_kills_the_process_and_closes_normally() {
    let emu = start(&["--aci-session-cap-seconds", "1"]);
    let mut ws = joined(&emu, "sh").await;
    let started = std::time::Instant::now();
    ws.send(Message::Binary(
        b"sleep 30; echo never-$((6*7))\n".to_vec().into(),
    ))
    .await
    .unwrap();
    let (text, code) = until_close(&mut ws).await;
    // A normal close, exactly as when the process exits: the client cannot tell the difference.
    assert_eq!(code, Some(1000));
    assert!(!text.contains("never-42"), "{text:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
