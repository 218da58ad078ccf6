//! Test support for the end-to-end tests: the local control plane started by `hack/cluster.sh`
//! (through `make e2e` / `make test`), kubectl, namespaces and waiting with deadlines.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod cli;
pub mod dist;
pub mod emulator;
pub mod helm;
pub mod kcx;
pub mod operator;
pub mod rcmd;
pub mod release;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Where the repository is.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What `hack/cluster.sh up` wrote into `cluster.env`.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub server: String,
    pub admin_token: String,
    pub user_token: String,
    pub ca_file: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    /// The node's name (the kubelet's).
    pub node: String,
    /// The node's containerd socket.
    pub containerd_socket: PathBuf,
}

impl Cluster {
    /// The running local control plane; panics with what to do when there is none.
    pub fn get() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            let dir = std::env::var("KUBEINVOKE_CLUSTER_DIR").unwrap_or_else(|_| {
                panic!(
                    "KUBEINVOKE_CLUSTER_DIR is not set: the end-to-end tests need the local kube-apiserver. \
                     Run them with `make e2e` (or `make test`), or start one with `make cluster-up` and \
                     `source $(hack/cluster.sh up)` first."
                )
            });
            let env_file = Path::new(&dir).join("cluster.env");
            let text = std::fs::read_to_string(&env_file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e} (is the local cluster up?)", env_file.display()));
            let vars: HashMap<String, String> = text
                .lines()
                .filter_map(|l| l.strip_prefix("export "))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let var = |k: &str| vars.get(k).cloned().unwrap_or_else(|| panic!("{} has no {k}", env_file.display()));
            Cluster {
                dir: PathBuf::from(&dir),
                kubeconfig: PathBuf::from(var("KUBECONFIG")),
                server: var("KUBEINVOKE_APISERVER"),
                admin_token: var("KUBEINVOKE_ADMIN_TOKEN"),
                user_token: var("KUBEINVOKE_USER_TOKEN"),
                ca_file: PathBuf::from(var("KUBEINVOKE_CA_FILE")),
                kubectl: PathBuf::from(var("KUBEINVOKE_KUBECTL")),
                helm: PathBuf::from(var("KUBEINVOKE_HELM")),
                node: var("KUBEINVOKE_NODE"),
                containerd_socket: PathBuf::from(var("KUBEINVOKE_CONTAINERD_SOCKET")),
            }
        })
    }

    /// An admin client.
    pub async fn client(&self) -> Client {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let kubeconfig =
            Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig of the local cluster");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("client config");
        Client::try_from(config).expect("client")
    }

    /// Runs kubectl (v1.20.2, built with the API server) against the local cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.kubectl.display()))
    }

    /// Starts kubectl in the background with its stdout to `out` (e.g. `logs -f`).
    pub fn kubectl_spawn(&self, args: &[&str], out: std::fs::File) -> std::process::Child {
        Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.kubectl.display()))
    }

    /// Runs kubectl and returns stdout, panicking with stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
    }

    /// Runs kubectl with `stdin` as input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.kubectl.display()));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("kubectl output")
    }
}

/// A fresh namespace named `<prefix>-<n>`, unique in this test run.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id() % 10_000,
        (nanos % 100_000) + N.fetch_add(1, Ordering::SeqCst)
    );
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    name
}

/// Installs (or updates) the CRDs with server-side apply and waits until they are Established.
pub async fn install_crds(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let params = PatchParams::apply("kubeinvoke-tests").force();
    for crd in kubeinvoke::api::crds::all() {
        let name = crd.metadata.name.clone().expect("CRD name");
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .expect("apply CRD");
        let api = api.clone();
        wait_until(
            Duration::from_secs(30),
            &format!("CRD {name} to be Established"),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    let established = crd
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    established.then_some(())
                }
            },
        )
        .await;
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming what it waited for.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// A fresh directory under the system temp dir for one test's files.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kubeinvoke-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Creates the credential Secret (`name`) for the emulator's default principal in `namespace`.
pub async fn credential_secret(client: &Client, namespace: &str, name: &str) {
    use k8s_openapi::api::core::v1::Secret;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "stringData": {
            "AZURE_TENANT_ID": emulator::TENANT,
            "AZURE_CLIENT_ID": emulator::CLIENT_ID,
            "AZURE_CLIENT_SECRET": emulator::CLIENT_SECRET,
        }
    }))
    .expect("Secret");
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create credential Secret");
}
