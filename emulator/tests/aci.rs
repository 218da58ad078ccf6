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
    let t = emu.arm_token().await;
    let r = emu
        .http
        .post(emu.url(&format!(
            "{}?api-version=2025-09-01",
            container_path("app", "exec")
        )))
        .bearer_auth(&t)
        .json(&json!({"command": command, "terminalSize": {"rows": 24, "cols": 100}}))
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
