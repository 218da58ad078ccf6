//! ARM's front door as Azure has it: the 4 MB request limit, api-versions, hostile Retry-After
//! values, subscription-scoped polls and the subscription-global throttling bucket.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB4: usize = 4 * 1024 * 1024;

fn run_command_url(emu: &Emulator) -> String {
    emu.url(&format!(
        "{}/runCommand?api-version=2025-10-01",
        cluster_path("aks1")
    ))
}

/// `{"command":"true"   …   }` of exactly `len` bytes.
fn padded_body(len: usize) -> Vec<u8> {
    let head = br#"{"command":"true""#;
    let mut body = head.to_vec();
    body.resize(len - 1, b' ');
    body.push(b'}');
    body
}

#[tokio::test]
async fn bodies_over_4_mib_are_refused_with_413() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let send = |body: Vec<u8>| {
        emu.http
            .post(run_command_url(&emu))
            .bearer_auth(&t)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = send(padded_body(MIB4)).await.unwrap();
    assert_eq!(r.status(), 202, "exactly 4 MiB passes");
    let r = send(padded_body(MIB4 + 1)).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "RequestContentTooLarge");
    assert_eq!(
        v["error"]["message"],
        "The request content size exceeds the maximum size of 4 MB."
    );
}

#[tokio::test]
async fn a_chunked_body_is_refused_once_it_passes_4_mib() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(emu.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", emu.port))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let path = format!("{}/runCommand?api-version=2025-10-01", cluster_path("aks1"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    // 5 MiB in 64 KiB chunks, no Content-Length: the limit is found while reading.
    let chunk = vec![b' '; 64 * 1024];
    let (mut rd, mut wr) = tokio::io::split(tls);
    let writer = tokio::spawn(async move {
        for _ in 0..80 {
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            if wr.write_all(&frame).await.is_err() {
                return;
            }
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
    });
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("RequestContentTooLarge") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("an answer");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("RequestContentTooLarge"), "{text}");
    writer.abort();
}

#[tokio::test]
async fn hostile_retry_after_values_are_sent_verbatim() {
    let emu = start(&["--retry-after", "18446744073709551615"]);
    let t = emu.arm_token().await;
    // A 202 with 2^64-1 seconds, and the emulator stays well when the poll comes.
    let r = emu
        .http
        .post(run_command_url(&emu))
        .bearer_auth(&t)
        .json(&json!({"command": "true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["retry-after"], "18446744073709551615");
    let at = r.headers()["location"].to_str().unwrap().to_string();
    let poll = emu.http.get(&at).bearer_auth(&t).send().await.unwrap();
    assert!(poll.status() == 200 || poll.status() == 202);
    // Faults: unquoted numbers, negative numbers and text (YAML).
    let get = emu.url(&format!("{}?api-version=2025-10-01", cluster_path("aks1")));
    for (yaml, want) in [
        ("retryAfter: -5", "-5"),
        ("retryAfter: garbage", "garbage"),
        (
            "retryAfter: \"18446744073709551615\"",
            "18446744073709551615",
        ),
        ("retryAfter: 3", "3"),
    ] {
        let faults = format!("aks.get:\n  error503Rate: 1.0\n  {yaml}\n");
        let r = emu
            .http
            .put(emu.url("/_emulator/faults"))
            .body(faults)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{yaml}");
        let r = emu.http.get(&get).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], want);
    }
    // GET /_emulator/faults gives them back as written.
    let v: Value = emu
        .http
        .get(emu.url("/_emulator/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["aks.get"]["retryAfter"], 3);
}

#[tokio::test]
async fn api_versions_are_checked_as_arm_does() {
    let emu = start(&["--aks-api-versions", "2025-10-01,2026-08-01"]);
    let t = emu.arm_token().await;
    let get = |version: &str| {
        let url = emu.url(&format!("{}?api-version={version}", cluster_path("aks1")));
        let (http, t) = (emu.http.clone(), t.clone());
        async move {
            let r = http.get(url).bearer_auth(t).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or_default())
        }
    };
    assert_eq!(get("2026-08-01").await.0, 200);
    let (status, v) = get("banana").await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (400, &json!("InvalidApiVersionParameter"))
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("The api-version 'banana' is invalid. The supported versions are '"),
        "{v}"
    );
    let (status, v) = get("2019-01-01").await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (400, &json!("NoRegisteredProviderFound"))
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "No registered resource provider found for location 'westeurope' and API version '2019-01-01' for type 'managedClusters'."
        ) && message.contains("2025-10-01, 2026-08-01"),
        "{message}"
    );
    // Without a list every well-formed version is served (ACI here).
    let logs = emu.url(&format!(
        "/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ContainerInstance/containerGroups/cg1/containers/app/logs?api-version=2019-12-01"
    ));
    let r = emu.http.get(&logs).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = emu
        .http
        .get(logs.replace("2019-12-01", "2019-12"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn hybrid_2026_06_01_preview_is_final_state_via_location() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let r = emu
        .http
        .post(emu.url(&format!(
            "/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Kubernetes/connectedClusters/arc1/providers/Microsoft.HybridContainerService/provisionedClusterInstances/default/listUserKubeconfig?api-version=2026-06-01-preview"
        )))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(r.headers().get("azure-asyncoperation").is_none());
    assert!(r.headers().get("location").is_some());
}

#[tokio::test]
async fn subscription_scoped_operation_polls_are_charged_to_the_subscription() {
    let emu = start(&[]);
    let t = emu.arm_token().await;
    let r = emu
        .http
        .post(emu.url(&format!(
            "/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Kubernetes/connectedClusters/arc1/providers/Microsoft.HybridContainerService/provisionedClusterInstances/default/listUserKubeconfig?api-version=2024-01-01"
        )))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let tenant_level = r.headers()["location"].to_str().unwrap().to_string();
    let path = tenant_level.strip_prefix(&emu.base).unwrap();
    let sub_level = emu.url(&format!("/subscriptions/{SUB}{path}"));
    let r = emu
        .http
        .get(&sub_level)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert!(
        h.contains_key("x-ms-ratelimit-remaining-subscription-reads"),
        "{h:?}"
    );
    assert!(h.contains_key("x-ms-ratelimit-remaining-subscription-global-reads"));
    assert!(!h.contains_key("x-ms-ratelimit-remaining-tenant-reads"));
    let r = emu
        .http
        .get(&tenant_level)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()
            .contains_key("x-ms-ratelimit-remaining-tenant-reads")
    );
}

#[tokio::test]
async fn the_subscription_global_bucket_is_shared_by_all_principals() {
    // Each principal may write 2; the subscription 3 (1.5x), whoever writes.
    let emu = start(&[
        "--write-burst",
        "2",
        "--write-rate",
        "0.01",
        "--global-multiplier",
        "1.5",
    ]);
    let other = "66666666-6666-6666-6666-666666666666";
    emu.put_world(&format!(
        r#"
tenants: [{{id: {TENANT}}}]
principals:
  - {{tenantId: {TENANT}, clientId: {CLIENT}, clientSecret: {SECRET}}}
  - {{tenantId: {TENANT}, clientId: {other}, clientSecret: s}}
subscriptions: [{{id: {SUB}, resourceGroups: [{{name: rg1, managedClusters: [{{name: aks1}}]}}]}}]
"#
    ))
    .await;
    let a = emu.arm_token().await;
    let b = json_of(emu.token_for(other, "s", ARM_SCOPE).await).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let write = |token: String| {
        let url = emu.url(&format!(
            "{}/listClusterUserCredential?api-version=2025-10-01",
            cluster_path("aks1")
        ));
        let http = emu.http.clone();
        async move { http.post(url).bearer_auth(token).send().await.unwrap() }
    };
    let header =
        |r: &reqwest::Response, name: &str| r.headers()[name].to_str().unwrap().to_string();
    let mut seen = Vec::new();
    for token in [&a, &a, &b] {
        let r = write(token.clone()).await;
        assert_eq!(r.status(), 200);
        seen.push((
            header(&r, "x-ms-ratelimit-remaining-subscription-writes"),
            header(&r, "x-ms-ratelimit-remaining-subscription-global-writes"),
        ));
    }
    let pairs: Vec<(&str, &str)> = seen.iter().map(|(o, g)| (o.as_str(), g.as_str())).collect();
    assert_eq!(pairs, [("1", "2"), ("0", "1"), ("1", "0")]);
    // B still has a token of its own, but the subscription has none left.
    let r = write(b.clone()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        header(&r, "x-ms-ratelimit-remaining-subscription-global-writes"),
        "0"
    );
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "SubscriptionRequestsThrottled");
    // Reads have their own global bucket.
    let r = emu
        .http
        .get(emu.url(&format!("{}?api-version=2025-10-01", cluster_path("aks1"))))
        .bearer_auth(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-ms-ratelimit-remaining-subscription-global-reads"),
        "374"
    );
}

/// ARM's front door negotiates HTTP/2 (the Azure SDK for Go's default transport attempts it on
/// every call) and still answers HTTP/1.1 clients (the Azure CLI, the Python SDK): concurrent
/// requests of an HTTP/2 client share its one connection, one TLS handshake in all.
#[tokio::test]
async fn arm_speaks_http2_and_one_connection_carries_concurrent_requests() {
    let emu = start(&[]);
    let token = emu.arm_token().await;
    let before = emu.counters().await;
    let h2 = client_trusting(&emu.ca_pem);
    let path = emu.url(&format!("{}?api-version=2025-10-01", cluster_path("aks1")));
    // A cold client opens one connection per request it sends at once (it learns HTTP/2 from the
    // handshake): the first request opens the one connection the others share.
    let first = h2.get(&path).bearer_auth(&token).send().await.unwrap();
    assert_eq!(first.version(), reqwest::Version::HTTP_2);
    let answers =
        futures::future::join_all((0..20).map(|_| h2.get(&path).bearer_auth(&token).send())).await;
    for answer in answers {
        let answer = answer.expect("GET over HTTP/2");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.version(), reqwest::Version::HTTP_2);
    }
    let h1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(emu.ca_pem.as_bytes()).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let answer = h1.get(&path).bearer_auth(&token).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.version(), reqwest::Version::HTTP_11);
    let after = emu.counters().await;
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert_eq!(delta("tlsHandshakes"), 2, "one per client: {after}");
    assert_eq!(delta("http2Connections"), 1, "{after}");
}
