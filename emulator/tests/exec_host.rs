//! ACI exec on a host and port of its own, and container groups that are not running.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn group_path(group: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ContainerInstance/containerGroups/{group}"
    )
}

async fn exec_post(emu: &Emulator, token: &str, group: &str) -> reqwest::Response {
    emu.http
        .post(emu.url(&format!(
            "{}/containers/app/exec?api-version=2025-09-01",
            group_path(group)
        )))
        .bearer_auth(token)
        .json(&json!({"command": "sh", "terminalSize": {"rows": 24, "cols": 80}}))
        .send()
        .await
        .unwrap()
}

fn connector(emu: &Emulator) -> tokio_tungstenite::Connector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(emu.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_tungstenite::Connector::Rustls(Arc::new(cfg))
}

/// Runs `exit 3` in a session at `uri` (reached over `tcp`) and returns the close code.
async fn run_exit(
    emu: &Emulator,
    uri: &str,
    password: &str,
    tcp: tokio::net::TcpStream,
) -> Option<u16> {
    let (mut ws, _) =
        tokio_tungstenite::client_async_tls_with_config(uri, tcp, None, Some(connector(emu)))
            .await
            .expect("websocket on the exec listener, certificate trusted for its host");
    ws.send(Message::Text(password.into())).await.unwrap();
    ws.send(Message::Binary(b"exit 3\n".to_vec().into()))
        .await
        .unwrap();
    let read = async {
        while let Some(msg) = ws.next().await {
            if let Ok(Message::Close(frame)) = msg {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("the session closes")
}

#[tokio::test]
async fn exec_websockets_are_served_on_their_own_host_and_port() {
    let emu = start(&[]);
    let endpoint = emu.ready["execEndpoint"].as_str().unwrap().to_string();
    let exec_port = emu.ready["execPort"].as_u64().unwrap() as u16;
    assert_eq!(endpoint, format!("wss://localhost:{exec_port}"));
    assert_ne!(exec_port, emu.port);
    let t = emu.arm_token().await;
    let v: Value = exec_post(&emu, &t, "cg1").await.json().await.unwrap();
    let uri = v["webSocketUri"].as_str().unwrap();
    let session = uri
        .strip_prefix(&format!("{endpoint}/execstream/"))
        .unwrap_or_else(|| panic!("ACI's shape wss://host:port/execstream/…: {uri}"));
    // ARM's port does not serve the websocket, under either path.
    for path in [
        format!("/execstream/{session}"),
        format!("/_aci/exec/{session}"),
    ] {
        let wrong = format!("wss://127.0.0.1:{}{path}", emu.port);
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", emu.port))
            .await
            .unwrap();
        let r = tokio_tungstenite::client_async_tls_with_config(
            wrong.as_str(),
            tcp,
            None,
            Some(connector(&emu)),
        )
        .await;
        assert!(r.is_err(), "{path} must not upgrade on ARM's port");
    }
    // The name resolves like any client would resolve it (localhost).
    let tcp = tokio::net::TcpStream::connect(("localhost", exec_port))
        .await
        .unwrap();
    let code = run_exit(&emu, uri, v["password"].as_str().unwrap(), tcp).await;
    assert_eq!(code, Some(1000));
}

#[tokio::test]
async fn the_exec_host_flag_names_the_host_and_the_certificate_covers_it() {
    let host = "x1f3.westeurope.atlas.cloudapp.azure.com";
    let emu = start(&["--exec-host", host]);
    let exec_port = emu.ready["execPort"].as_u64().unwrap() as u16;
    assert_eq!(
        emu.ready["execEndpoint"],
        format!("wss://{host}:{exec_port}")
    );
    let t = emu.arm_token().await;
    let v: Value = exec_post(&emu, &t, "cg1").await.json().await.unwrap();
    let uri = v["webSocketUri"].as_str().unwrap();
    assert!(uri.starts_with(&format!("wss://{host}:{exec_port}/execstream/")));
    // No DNS for that name here: connect by address, verify the certificate by the name.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", exec_port))
        .await
        .unwrap();
    let code = run_exit(&emu, uri, v["password"].as_str().unwrap(), tcp).await;
    assert_eq!(code, Some(1000));
}

const GROUPS: &str = r#"
tenants: [{id: 00000000-0000-0000-0000-000000000001}]
principals:
  - {tenantId: 00000000-0000-0000-0000-000000000001, clientId: 11111111-1111-1111-1111-111111111111, clientSecret: emulator-secret}
  - {tenantId: 00000000-0000-0000-0000-000000000001, clientId: 44444444-4444-4444-4444-444444444444, clientSecret: s,
     allowedActions: [Microsoft.ContainerInstance/containerGroups/containers/exec/action]}
subscriptions:
  - id: 00000000-0000-0000-0000-000000000000
    resourceGroups:
      - name: rg1
        containerGroups:
          - {name: up, containers: [{name: app}]}
          - {name: win, osType: Windows, containers: [{name: app}, {name: sidecar}]}
          - {name: stopped, state: Stopped, containers: [{name: app}]}
          - {name: pending, state: Pending, containers: [{name: app}]}
          - {name: done, state: Succeeded, containers: [{name: app}]}
"#;

#[tokio::test]
async fn a_container_group_get_shows_its_state_os_and_containers() {
    let emu = start(&[]);
    emu.put_world(GROUPS).await;
    let t = emu.arm_token().await;
    let get = |group: &'static str, token: String| {
        let http = emu.http.clone();
        let url = emu.url(&format!("{}?api-version=2025-09-01", group_path(group)));
        async move { http.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let r = get("win", t.clone()).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let p = &v["properties"];
    assert_eq!(p["osType"], "Windows");
    assert_eq!(p["instanceView"]["state"], "Running");
    assert_eq!(p["provisioningState"], "Succeeded");
    assert_eq!(p["containers"][1]["name"], "sidecar");
    assert_eq!(v["type"], "Microsoft.ContainerInstance/containerGroups");
    let v: Value = get("stopped", t.clone()).await.json().await.unwrap();
    assert_eq!(v["properties"]["instanceView"]["state"], "Stopped");
    assert_eq!(v["properties"]["osType"], "Linux");
    assert_eq!(get("nope", t).await.status(), 404);
    // Reading the group is its own action.
    let r = emu
        .token_for("44444444-4444-4444-4444-444444444444", "s", ARM_SCOPE)
        .await;
    let limited = json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = get("up", limited).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'Microsoft.ContainerInstance/containerGroups/read'"),
        "{v}"
    );
}

#[tokio::test]
async fn exec_needs_a_running_group() {
    let emu = start(&[]);
    emu.put_world(GROUPS).await;
    let t = emu.arm_token().await;
    assert_eq!(exec_post(&emu, &t, "up").await.status(), 200);
    for (group, code) in [
        ("stopped", "ContainerGroupStopped"),
        ("pending", "ContainerGroupNotRunning"),
        ("done", "ContainerGroupNotRunning"),
    ] {
        let r = exec_post(&emu, &t, group).await;
        assert_eq!(r.status(), 409, "{group}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
    }
}
