//! Test helpers: start the built emulator binary on a loopback port and talk to it over TLS.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const TENANT: &str = "00000000-0000-0000-0000-000000000001";
pub const CLIENT: &str = "11111111-1111-1111-1111-111111111111";
pub const SECRET: &str = "emulator-secret";
pub const SUB: &str = "00000000-0000-0000-0000-000000000000";
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
pub const AKS_SCOPE: &str = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";

pub struct Emulator {
    child: Child,
    pub ready: Value,
    pub base: String,
    pub port: u16,
    pub ca_pem: String,
    pub http: reqwest::Client,
    _dir: TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("emu-rs-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_kubeinvoke-emulator")
}

pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Starts the emulator with extra flags and waits for its ready line.
pub fn start(args: &[&str]) -> Emulator {
    install_crypto();
    let dir = TempDir::new("state");
    let mut child = Command::new(binary())
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&dir.0)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn emulator");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("emulator ready line within 30 s");
    let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
    assert_eq!(ready["event"], "ready");
    let ca_pem = std::fs::read_to_string(ready["caFile"].as_str().unwrap()).expect("CA file");
    let http = client_trusting(&ca_pem);
    Emulator {
        child,
        base: ready["armEndpoint"].as_str().unwrap().to_string(),
        port: ready["port"].as_u64().unwrap() as u16,
        ready,
        ca_pem,
        http,
        _dir: dir,
    }
}

pub fn client_trusting(ca_pem: &str) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM");
    reqwest::Client::builder()
        .add_root_certificate(cert)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

impl Emulator {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn token_for(&self, client: &str, secret: &str, scope: &str) -> reqwest::Response {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            enc(client),
            enc(secret),
            enc(scope)
        );
        self.http
            .post(self.url(&format!("/{TENANT}/oauth2/v2.0/token")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("token request")
    }

    pub async fn token(&self, scope: &str) -> String {
        let resp = self.token_for(CLIENT, SECRET, scope).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    pub async fn arm_token(&self) -> String {
        self.token(ARM_SCOPE).await
    }

    pub async fn counters(&self) -> Value {
        self.http
            .get(self.url("/_emulator/counters"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn put_world(&self, body: &str) {
        let r = self
            .http
            .put(self.url("/_emulator/world"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

pub fn cluster_path(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}

pub async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.expect("JSON body")
}

/// Waits until `f` returns Some, polling every 20 ms, failing after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
