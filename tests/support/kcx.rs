//! Helpers for the KubeconfigExport end-to-end tests: a namespace with its own emulator and
//! operator, exports created from JSON, waiting on their status, and reading Secrets and Events.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kubeinvoke::api::KubeconfigExport;
use serde_json::{Value, json};

use super::emulator::{Emulator, aks_id, connected_id, world};
use super::operator::Operator;
use super::release::Installed;
use super::{Cluster, credential_secret, install_crds, namespace, scratch_dir, wait_until};

/// Name of the credential Secret every test namespace gets.
pub const CREDENTIALS: &str = "azure-credentials";
/// How long a first export may take (operator start-up included).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// One test's world: its namespace, emulator and operator (stopped when dropped).
pub struct Env {
    pub client: Client,
    pub ns: String,
    pub emulator: Emulator,
    pub operator: Serving,
}

/// The operator of an [`Env`]: a host process, or the chart installed on the node.
pub enum Serving {
    Process(Operator),
    Chart(Installed),
}

impl Serving {
    pub fn logs(&self) -> String {
        match self {
            Serving::Process(op) => op.logs(),
            Serving::Chart(op) => op.logs(),
        }
    }
}

impl Env {
    /// A fresh namespace with the credential Secret, an emulator with `world` and `emulator_args`,
    /// and an operator watching the namespace.
    pub async fn start(prefix: &str, world: &str, emulator_args: &[&str]) -> Env {
        Env::serve(prefix, world, emulator_args, false).await
    }

    /// [`Env::start`] with the operator installed from its chart on the node.
    pub async fn on_chart(prefix: &str, world: &str) -> Env {
        Env::serve(prefix, world, &[], true).await
    }

    async fn serve(prefix: &str, world: &str, emulator_args: &[&str], chart: bool) -> Env {
        let client = Cluster::get().client().await;
        install_crds(&client).await;
        let ns = namespace(&client, prefix).await;
        credential_secret(&client, &ns, CREDENTIALS).await;
        let emulator = Emulator::start(world, emulator_args);
        let operator = if chart {
            Serving::Chart(Installed::install(&client, &emulator, &ns).await)
        } else {
            Serving::Process(Operator::start(&emulator, &ns, &[]))
        };
        Env {
            client,
            ns,
            emulator,
            operator,
        }
    }

    pub fn exports(&self) -> Api<KubeconfigExport> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates export `name` with `spec` (JSON); `credentialRef` defaults to the test's Secret.
    pub async fn create(&self, name: &str, mut spec: Value) {
        if spec.get("credentialRef").is_none() {
            spec["credentialRef"] = json!({"name": CREDENTIALS});
        }
        let obj: KubeconfigExport = serde_json::from_value(json!({
            "apiVersion": "kubeinvoke.io/v1alpha1",
            "kind": "KubeconfigExport",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("KubeconfigExport");
        self.exports()
            .create(&PostParams::default(), &obj)
            .await
            .expect("create KubeconfigExport");
    }

    /// Waits until the status of the current generation has `reason`.
    pub async fn wait_reason(
        &self,
        name: &str,
        reason: &str,
        timeout: Duration,
    ) -> KubeconfigExport {
        let api = self.exports();
        wait_until(
            timeout,
            &format!(
                "KubeconfigExport {}/{name} to have reason {reason}",
                self.ns
            ),
            || {
                let api = api.clone();
                async move {
                    let k = api.get(name).await.ok()?;
                    let s = k.status.as_ref()?;
                    (s.observed_generation == k.metadata.generation.unwrap_or_default()
                        && s.reason.as_deref() == Some(reason))
                    .then_some(k)
                }
            },
        )
        .await
    }

    /// Waits for `Ready=True` with reason `Exported`.
    pub async fn wait_exported(&self, name: &str) -> KubeconfigExport {
        let k = self.wait_reason(name, "Exported", EXPORT_TIMEOUT).await;
        assert_eq!(condition(&k, "Ready"), Some("True".to_string()), "{k:?}");
        k
    }

    /// Changes `spec.refreshInterval` (a spec change: the operator fetches again at once).
    pub async fn set_refresh_interval(&self, name: &str, value: &str) {
        self.exports()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"refreshInterval": value}})),
            )
            .await
            .expect("patch refreshInterval");
    }

    pub async fn secret(&self, name: &str) -> Secret {
        self.secrets().get(name).await.expect("Secret")
    }

    /// Events about export `name` with `reason`, counting repeats of an Event series.
    pub async fn event_count(&self, name: &str, reason: &str) -> i32 {
        self.events()
            .await
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.series.as_ref().map_or(1, |s| s.count))
            .sum()
    }

    /// Waits until at least `count` Events about export `name` have `reason` (Events are
    /// published after the status is written).
    pub async fn wait_events(&self, name: &str, reason: &str, count: i32) {
        wait_until(
            Duration::from_secs(10),
            &format!("{count} {reason} Event(s) about {}/{name}", self.ns),
            || async move { (self.event_count(name, reason).await >= count).then_some(()) },
        )
        .await
    }

    /// Every Event in the namespace.
    pub async fn events(&self) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .expect("list Events")
            .items
    }

    /// Counter `op` of the emulator's `requests`.
    pub async fn requests(&self, op: &str) -> u64 {
        self.emulator.counters().await["requests"][op]
            .as_u64()
            .unwrap_or(0)
    }
}

/// The status of condition `type_`.
pub fn condition(k: &KubeconfigExport, type_: &str) -> Option<String> {
    k.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

/// The message of condition `type_`.
pub fn condition_message(k: &KubeconfigExport, type_: &str) -> String {
    k.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Key `key` of a Secret as text.
pub fn text(secret: &Secret, key: &str) -> String {
    let data = secret.data.as_ref().expect("Secret data");
    let value = data
        .get(key)
        .unwrap_or_else(|| panic!("Secret has no key {key}: {:?}", data.keys()));
    String::from_utf8(value.0.clone()).expect("UTF-8")
}

/// A Secret's data, for comparing content.
pub fn data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// Runs `kubectl --kubeconfig <file with kubeconfig> args` (and nothing from the environment).
pub fn kubectl_with(kubeconfig: &str, args: &[&str]) -> Output {
    let dir = scratch_dir("kcx-kubeconfig");
    let file = dir.join("kubeconfig");
    std::fs::write(&file, kubeconfig).expect("write kubeconfig");
    Command::new(&Cluster::get().kubectl)
        .arg("--kubeconfig")
        .arg(&file)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl")
}

/// Asserts that `kubeconfig` reaches the local cluster: `kubectl get namespaces` lists `ns`.
pub fn assert_kubeconfig_works(kubeconfig: &str, ns: &str) {
    let out = kubectl_with(kubeconfig, &["get", "namespaces", "-o", "name"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("namespace/{ns}")),
        "kubectl with the exported kubeconfig: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Base64 of the local cluster's CA, as kubeconfigs carry it.
pub fn local_ca() -> String {
    let pem = std::fs::read(&Cluster::get().ca_file).expect("CA file");
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// A world list item (indented for `world()`) for AKS cluster `name` whose kubeconfig points at
/// the local cluster with `token`; `extra` is added to the item, e.g. `kubeconfigFault: invalidYaml`.
pub fn aks_cluster(name: &str, token: &str, extra: &str) -> String {
    let cluster = Cluster::get();
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!(
        "          - {{name: {name}, kubeconfig: {{server: \"{}\", certificateAuthorityData: \"{}\", userToken: \"{token}\", adminToken: \"{token}\"}}{extra}}}",
        cluster.server,
        local_ca()
    )
}

/// A world list item for connected cluster `name` (`extra` as for [`aks_cluster`]).
pub fn connected_cluster(name: &str, extra: &str) -> String {
    let cluster = Cluster::get();
    format!(
        "          - {{name: {name}, kubeconfig: {{server: \"{}\", certificateAuthorityData: \"{}\", userToken: \"{}\", adminToken: \"{}\"}}, {extra}}}",
        cluster.server,
        local_ca(),
        cluster.user_token,
        cluster.user_token
    )
}

/// `spec.source` for AKS cluster `name`.
pub fn aks(name: &str, role: &str) -> Value {
    json!({"aks": {"resourceId": aks_id(name), "role": role}})
}

/// `spec.source` for connected cluster `name`.
pub fn hybrid(name: &str, role: &str) -> Value {
    json!({"hybrid": {"connectedClusterResourceId": connected_id(name), "role": role}})
}

/// A spec exporting `source` to Secret `secret` in `format`.
pub fn spec(source: Value, secret: &str, format: &str) -> Value {
    json!({
        "source": source,
        "secret": {"name": secret, "format": format},
    })
}

/// Exports, then makes ARM return `fault` content and fetches again: the export reports
/// `InvalidKubeconfig` and the Secret keeps the last good kubeconfig.
pub async fn bad_content_keeps_previous_secret(env: &Env, fault: &str) {
    let token = &Cluster::get().user_token;
    env.create(
        "edge",
        spec(aks("aks-f", "User"), "edge-kubeconfig", "Kubeconfig"),
    )
    .await;
    let good = env.wait_exported("edge").await.status.unwrap();
    let secret = env.secret("edge-kubeconfig").await;

    let broken = format!("kubeconfigFault: {fault}");
    env.emulator
        .put_world(&world(&aks_cluster("aks-f", token, &broken), ""))
        .await;
    env.set_refresh_interval("edge", "2h").await;
    let k = env
        .wait_reason("edge", "InvalidKubeconfig", EXPORT_TIMEOUT)
        .await;
    assert_eq!(condition(&k, "Ready").as_deref(), Some("False"));
    assert_eq!(condition(&k, "Stalled").as_deref(), Some("True"));
    let status = k.status.unwrap();
    assert_eq!(
        status.content_hash, good.content_hash,
        "last good hash kept"
    );
    let now = env.secret("edge-kubeconfig").await;
    assert_eq!(data(&now), data(&secret), "Secret data unchanged");
    assert_eq!(
        now.metadata.resource_version,
        secret.metadata.resource_version
    );
    env.wait_events("edge", "InvalidKubeconfig", 1).await;
}
