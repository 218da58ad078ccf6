//! The emulator as a child process of a test: started on a free loopback port with a world of the
//! test's choosing, read through its control API, stopped when dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Cluster, repo_root, scratch_dir};

pub const TENANT: &str = "00000000-0000-0000-0000-000000000001";
pub const CLIENT_ID: &str = "11111111-1111-1111-1111-111111111111";
pub const CLIENT_SECRET: &str = "emulator-secret";
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";

/// ARM resource ID of an AKS cluster in resource group `rg1`.
pub fn aks_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}
/// ARM resource ID of a container group in resource group `rg1`.
pub fn group_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.ContainerInstance/containerGroups/{name}"
    )
}
/// ARM resource ID of a connected (Arc) cluster in resource group `rg1`.
pub fn connected_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1/providers/Microsoft.Kubernetes/connectedClusters/{name}"
    )
}

/// A world in which every kubeconfig points at the local kube-apiserver with a working token, with
/// `extra_clusters`, `extra_groups` and `extra_connected` (YAML list items, indented by the caller
/// to 10 spaces) added to resource group `rg1`.
pub fn world(extra_clusters: &str, extra_connected: &str) -> String {
    let kubeconfig = kubeconfig_spec(Cluster::get());
    format!(
        r#"tenants: [{{id: "{TENANT}"}}]
principals:
  - {{tenantId: "{TENANT}", clientId: "{CLIENT_ID}", clientSecret: "{CLIENT_SECRET}"}}
  - {{tenantId: "{TENANT}", clientId: "44444444-4444-4444-4444-444444444444", clientSecret: "limited-secret", allowedActions: ["Microsoft.ContainerService/managedClusters/read"]}}
subscriptions:
  - id: "{SUBSCRIPTION}"
    tenantId: "{TENANT}"
    resourceGroups:
      - name: rg1
        managedClusters:
          - {{name: aks1, {kubeconfig}}}
          - {{name: aks-aad, aadManaged: true, {kubeconfig}}}
          - {{name: aks-norun, disableRunCommand: true}}
{extra_clusters}
        containerGroups:
          - name: cg1
            containers: [{{name: app, logs: ["ready"]}}]
        connectedClusters:
          - {{name: arc1, lroPolls: 2, {kubeconfig}}}
{extra_connected}
"#,
    )
}

/// Client id of the emulator's managed identity (see [`with_managed_identity`]).
pub const MANAGED_IDENTITY: &str = "22222222-2222-2222-2222-222222222222";
/// The header its token endpoint wants.
pub const IDENTITY_HEADER: &str = "emulator-identity-header";

/// `world` with a managed identity, which an operator installed with [`managed_identity_env`] (and
/// `operatorIdentity: managed`) uses as its own identity.
pub fn with_managed_identity(world: &str) -> String {
    format!(
        "{world}managedIdentity: {{clientId: \"{MANAGED_IDENTITY}\", tenantId: \"{TENANT}\", header: \"{IDENTITY_HEADER}\"}}\n"
    )
}

/// The chart's `extraEnv` for an operator whose own identity is the emulator's managed identity,
/// with the test cluster's API server address: a values file's `extraEnv` replaces the one
/// `Installed` sets rather than extending it.
pub fn managed_identity_env(emulator: &Emulator) -> Value {
    let port = Cluster::get()
        .server
        .rsplit(':')
        .next()
        .expect("API server port")
        .to_string();
    json!([
        {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": port},
        {"name": "IDENTITY_ENDPOINT", "value": format!("{}/msi/token", emulator.arm)},
        {"name": "IDENTITY_HEADER", "value": IDENTITY_HEADER},
    ])
}

/// `world` with federated principals added, each `(client id, namespace, ServiceAccount)` trusting
/// that ServiceAccount's tokens, and the test cluster's service-account issuer with its signing
/// keys (as Entra ID fetches them from the issuer).
pub fn federated(world: &str, principals: &[(&str, &str, &str)]) -> String {
    const ISSUER: &str = "https://kubernetes.default.svc";
    const AUDIENCE: &str = "api://AzureADTokenExchange";
    let lines: String = principals
        .iter()
        .map(|(id, ns, sa)| {
            format!(
                "  - {{tenantId: \"{TENANT}\", clientId: \"{id}\", federated: true, issuer: \"{ISSUER}\", \
                 subject: \"system:serviceaccount:{ns}:{sa}\", audience: \"{AUDIENCE}\"}}\n"
            )
        })
        .collect();
    let jwks = Cluster::get().kubectl_ok(&["get", "--raw", "/openid/v1/jwks"]);
    let jwks: Value = serde_json::from_str(&jwks).expect("JWKS JSON");
    let world = world.replacen("principals:\n", &format!("principals:\n{lines}"), 1);
    format!("{world}oidcIssuers:\n  - {{issuer: \"{ISSUER}\", jwks: {jwks}}}\n")
}

/// The world's `kubeconfig:` entry for the local cluster (server, CA, a system:masters token).
pub fn kubeconfig_spec(cluster: &Cluster) -> String {
    let ca = base64_file(&cluster.ca_file);
    format!(
        "kubeconfig: {{server: \"{}\", certificateAuthorityData: \"{ca}\", userToken: \"{}\", adminToken: \"{}\"}}",
        cluster.server, cluster.user_token, cluster.user_token
    )
}

fn base64_file(path: &std::path::Path) -> String {
    use base64::Engine as _;
    let pem = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// Path of a workspace binary built by `cargo build --workspace --bins` (what `make e2e` runs first).
pub fn workspace_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --workspace --bins` (make e2e does)",
        path.display()
    );
    path
}

pub struct Emulator {
    child: Child,
    pub arm: String,
    /// The host name ACI exec websockets are served on (a host and port of their own, as ACI's).
    pub exec_host: String,
    pub ca_file: PathBuf,
    pub control: String,
    pub dir: PathBuf,
    http: reqwest::Client,
}

impl Emulator {
    /// Starts the emulator with `world` (YAML) and extra flags, and waits for its ready line.
    pub fn start(world: &str, args: &[&str]) -> Emulator {
        let dir = scratch_dir("emulator");
        let world_file = dir.join("world.yaml");
        std::fs::write(&world_file, world).expect("write world");
        let mut child = Command::new(workspace_binary("kubeinvoke-emulator"))
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(&dir)
            .arg("--world")
            .arg(&world_file)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("emulator.log")).expect("log file"))
            .spawn()
            .expect("start kubeinvoke-emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(dir.join("emulator.log")).unwrap_or_default();
            panic!("the emulator did not print its ready line ({e}): {line}\n{log}")
        });
        let ca_file = PathBuf::from(ready["caFile"].as_str().expect("caFile"));
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(&ca_file).expect("CA")).expect("CA PEM");
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .expect("http client");
        let exec_endpoint = ready["execEndpoint"]
            .as_str()
            .unwrap_or_else(|| panic!("the emulator's ready line has no execEndpoint: {line}"));
        let exec_host = reqwest::Url::parse(exec_endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| panic!("execEndpoint {exec_endpoint} has no host"));
        Emulator {
            child,
            exec_host,
            arm: ready["armEndpoint"]
                .as_str()
                .expect("armEndpoint")
                .to_string(),
            control: ready["controlUrl"]
                .as_str()
                .expect("controlUrl")
                .to_string(),
            ca_file,
            dir,
            http,
        }
    }

    pub async fn counters(&self) -> Value {
        self.get("counters").await
    }

    pub async fn requests(&self) -> Value {
        self.get("requests").await
    }

    async fn get(&self, what: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}/{what}", self.control))
            .send()
            .await
            .expect("control API");
        resp.json().await.expect("control API JSON")
    }

    /// Replaces the world at run time (YAML).
    pub async fn put_world(&self, world: &str) {
        let resp = self
            .http
            .put(format!("{}/world", self.control))
            .body(world.to_string())
            .send()
            .await
            .expect("PUT world");
        assert!(
            resp.status().is_success(),
            "PUT world: {}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// Replaces the fault map at run time (YAML or JSON).
    pub async fn put_faults(&self, faults: &str) {
        let resp = self
            .http
            .put(format!("{}/faults", self.control))
            .body(faults.to_string())
            .send()
            .await
            .expect("PUT faults");
        assert!(
            resp.status().is_success(),
            "PUT faults: {}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// Adds (or replaces) one resource of `kind` (`managedClusters`, `connectedClusters`,
    /// `containerGroups`) in resource group `rg` of the test subscription, at run time; `fields`
    /// are its world fields (YAML flow).
    pub async fn put_resource(&self, rg: &str, kind: &str, name: &str, fields: &str) {
        let url = format!(
            "{}/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/{kind}/{name}",
            self.control
        );
        let resp = self
            .http
            .put(url)
            .body(fields.to_string())
            .send()
            .await
            .expect("PUT resource");
        assert!(
            resp.status().is_success(),
            "PUT {kind}/{name}: {}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// Removes one resource, as [`Emulator::put_resource`] names it.
    pub async fn delete_resource(&self, rg: &str, kind: &str, name: &str) {
        let url = format!(
            "{}/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/{kind}/{name}",
            self.control
        );
        let resp = self.http.delete(url).send().await.expect("DELETE resource");
        assert!(
            resp.status().is_success(),
            "DELETE {kind}/{name}: {}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// How many times ARM was asked to run exactly `command`.
    pub async fn dispatches(&self, command: &str) -> u64 {
        self.counters().await["dispatches"][command]
            .as_u64()
            .unwrap_or(0)
    }

    /// How many runCommand POSTs each AKS cluster got, by cluster name, from the request log.
    pub async fn run_commands_per_cluster(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for entry in self
            .requests()
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let path = entry["path"].as_str().unwrap_or_default();
            if entry["method"] == "POST" && path.ends_with("/runCommand") {
                let name = path.rsplit('/').nth(1).unwrap_or_default().to_string();
                *counts.entry(name).or_default() += 1;
            }
        }
        counts
    }

    /// The most AKS commands that ran at once.
    pub async fn commands_running_peak(&self) -> u64 {
        self.counters().await["commandsRunningPeak"]
            .as_u64()
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("emulator.log")).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits (with a deadline) until the emulator's counters satisfy `check`.
pub async fn wait_counters(
    emulator: &Emulator,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    super::wait_until(Duration::from_secs(30), what, || async {
        let c = emulator.counters().await;
        check(&c).then_some(c)
    })
    .await
}
