//! The operator under the chart's RBAC: the chart's ServiceAccount, roles and bindings applied in a
//! release namespace, a TokenRequest token for that ServiceAccount, a kubeconfig with only that
//! token, and the operator binary started with it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::support::emulator::Emulator;
use crate::support::helm::{Chart, Release};
use crate::support::{Cluster, scratch_dir};

/// The chart's templates that make up the operator's identity and permissions.
pub const RBAC_TEMPLATES: [&str; 5] = [
    "serviceaccount.yaml",
    "clusterrole.yaml",
    "clusterrolebinding.yaml",
    "role.yaml",
    "rolebinding.yaml",
];

/// Audience of the API server (`--api-audiences`), which a TokenRequest must ask for.
const API_AUDIENCE: &str = "https://kubernetes.default.svc";

/// Renders the RBAC templates for `release` and applies them as admin; returns the objects.
pub async fn install(admin: &Client, chart: &Chart, release: &Release) -> Vec<Value> {
    let mut objects = Vec::new();
    for file in RBAC_TEMPLATES {
        if let Some(object) = chart.render_object(file, release) {
            apply(admin, &object).await;
            objects.push(object);
        }
    }
    objects
}

pub async fn apply(admin: &Client, object: &Value) {
    let (group, version) = match object["apiVersion"].as_str().expect("apiVersion") {
        v if v.contains('/') => v.split_once('/').expect("group/version"),
        v => ("", v),
    };
    let kind = object["kind"].as_str().expect("kind");
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let obj: DynamicObject = serde_json::from_value(object.clone()).expect("a Kubernetes object");
    let api: Api<DynamicObject> = match obj.namespace() {
        Some(ns) => Api::namespaced_with(admin.clone(), &ns, &resource),
        None => Api::all_with(admin.clone(), &resource),
    };
    api.patch(
        &obj.name_any(),
        &PatchParams::apply("kubeinvoke-tests").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {kind} {}: {e}", obj.name_any()));
}

/// A bound token for ServiceAccount `namespace/name` (TokenRequest, one hour).
pub async fn token(admin: &Client, namespace: &str, name: &str) -> String {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![API_AUDIENCE.to_string()],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(name, &Default::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{name}: {e}"))
        .status
        .expect("TokenRequest status")
        .token
}

/// A kubeconfig file for the local cluster that authenticates with `token` only.
pub fn kubeconfig(token: &str) -> PathBuf {
    let cluster = Cluster::get();
    let path = scratch_dir("rbac").join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
         users:\n- name: operator\n  user:\n    token: {token}\ncontexts:\n- name: operator\n  context: {{cluster: local, user: operator}}\n\
         current-context: operator\n",
        cluster.server,
        cluster.ca_file.display(),
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// `kubectl auth can-i <args> --as system:serviceaccount:<namespace>:<name>`, as admin.
pub fn can_i(namespace: &str, name: &str, args: &[&str]) -> bool {
    let user = format!("--as=system:serviceaccount:{namespace}:{name}");
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    all.push(&user);
    let out = Cluster::get().kubectl(&all);
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!(
            "kubectl {all:?}: {other} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// `kubeinvoke controller` authenticating with `kubeconfig`, watching `namespace`, with the lease in
/// `lease_namespace`. Killed when dropped; its log is printed when the test panics.
pub struct ScopedOperator {
    child: Child,
    pub log_file: PathBuf,
}

impl ScopedOperator {
    pub fn start(
        emulator: &Emulator,
        kubeconfig: &std::path::Path,
        namespace: &str,
        lease_namespace: &str,
        lease_name: &str,
    ) -> ScopedOperator {
        let log_file = scratch_dir("rbac-operator").join("operator.log");
        let log = std::fs::File::create(&log_file).expect("operator log");
        let child = Command::new(env!("CARGO_BIN_EXE_kubeinvoke"))
            .arg("controller")
            .args(["--watch-namespace", namespace])
            .args([
                "--arm-endpoint",
                &emulator.arm,
                "--authority-host",
                &emulator.arm,
            ])
            .arg("--ca-file")
            .arg(&emulator.ca_file)
            .args(["--aci-exec-hosts", &emulator.exec_host])
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info,kubeinvoke=debug",
            ])
            .args(["--http-addr", "127.0.0.1:0"])
            .args([
                "--leader-elect",
                "--leader-election-namespace",
                lease_namespace,
            ])
            .args(["--leader-election-lease-name", lease_name])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", "kubeinvoke-rbac-test")
            .env_remove("RUST_LOG")
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kubeinvoke controller");
        ScopedOperator { child, log_file }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }
}

impl Drop for ScopedOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- operator log ({}) ---\n{}",
                self.log_file.display(),
                self.logs()
            );
        }
    }
}
