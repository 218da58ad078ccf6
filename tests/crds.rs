//! End to end against the local kube-apiserver v1.20.2: the CRDs install, validate what users
//! write, print and explain themselves, and read as in progress to kstatus from creation on.

mod support;

use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kubeinvoke::api::{KubeconfigExport, RemoteCommand};
use serde_json::{Value, json};
use support::{Cluster, install_crds, namespace};

const AKS_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1";
const CG_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.ContainerInstance/containerGroups/cg1";
const ARC_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.Kubernetes/connectedClusters/arc1";

async fn setup(prefix: &str) -> (Client, String) {
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let ns = namespace(&client, prefix).await;
    (client, ns)
}

#[tokio::test]
async fn runs_against_kube_apiserver_v1_20_2() {
    let client = Cluster::get().client().await;
    let version = client.apiserver_version().await.expect("GET /version");
    assert_eq!(
        version.git_version, "v1.20.2",
        "the end-to-end tests must run against kube-apiserver v1.20.2"
    );
}

#[tokio::test]
async fn crds_install_and_become_established() {
    let (client, _) = setup("established").await;
    // install_crds waited for Established; the API serves both kinds under their short names.
    let out =
        Cluster::get().kubectl_ok(&["api-resources", "--api-group=kubeinvoke.io", "-o", "wide"]);
    for expected in [
        "remotecommands",
        "rcmd",
        "RemoteCommand",
        "kubeconfigexports",
        "kcx",
        "KubeconfigExport",
        "kubeinvoke",
    ] {
        assert!(
            out.contains(expected),
            "api-resources lacks {expected}:\n{out}"
        );
    }
    drop(client);
}

fn rcmd(spec: Value) -> Value {
    json!({"apiVersion": "kubeinvoke.io/v1alpha1", "kind": "RemoteCommand", "metadata": {"name": "bad"}, "spec": spec})
}

fn kcx(spec: Value) -> Value {
    json!({"apiVersion": "kubeinvoke.io/v1alpha1", "kind": "KubeconfigExport", "metadata": {"name": "bad"}, "spec": spec})
}

fn aks_spec(extra: Value) -> Value {
    let mut spec = json!({"target": {"aks": {"resourceId": AKS_ID}}, "command": "kubectl get ns"});
    merge(&mut spec, extra);
    spec
}

fn kcx_spec(extra: Value) -> Value {
    let mut spec = json!({"source": {"hybrid": {"connectedClusterResourceId": ARC_ID}}, "secret": {"name": "arc1-kubeconfig"}});
    merge(&mut spec, extra);
    spec
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(&k);
                } else {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[tokio::test]
async fn invalid_manifests_are_rejected_naming_the_field() {
    let (_, ns) = setup("invalid").await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no target",
            rcmd(json!({"target": {}, "command": "true"})),
            "spec.target",
        ),
        (
            "two targets",
            rcmd(aks_spec(
                json!({"target": {"containerInstance": {"resourceId": CG_ID, "container": "app"}}}),
            )),
            "spec.target",
        ),
        (
            "missing command",
            rcmd(aks_spec(json!({"command": null}))),
            "spec.command",
        ),
        (
            "empty command",
            rcmd(aks_spec(json!({"command": ""}))),
            "spec.command",
        ),
        (
            "unknown dispatch policy",
            rcmd(aks_spec(json!({"dispatchPolicy": "ExactlyOnce"}))),
            "spec.dispatchPolicy",
        ),
        (
            "negative timeout",
            rcmd(aks_spec(json!({"timeoutSeconds": -1}))),
            "spec.timeoutSeconds",
        ),
        (
            "timeout over a day",
            rcmd(aks_spec(json!({"timeoutSeconds": 86401}))),
            "spec.timeoutSeconds",
        ),
        (
            "zero attempts",
            rcmd(aks_spec(json!({"maxAttempts": 0}))),
            "spec.maxAttempts",
        ),
        (
            "tailBytes over the maximum",
            rcmd(aks_spec(json!({"output": {"tailBytes": 16385}}))),
            "spec.output.tailBytes",
        ),
        (
            "output secret not a name",
            rcmd(aks_spec(json!({"output": {"secretName": "Not_A_Name"}}))),
            "spec.output.secretName",
        ),
        (
            "malformed AKS resource ID",
            rcmd(aks_spec(
                json!({"target": {"aks": {"resourceId": "/subscriptions/not-a-guid/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1"}}}),
            )),
            "spec.target.aks.resourceId",
        ),
        (
            "AKS ID of another type",
            rcmd(aks_spec(json!({"target": {"aks": {"resourceId": CG_ID}}}))),
            "spec.target.aks.resourceId",
        ),
        (
            "container group ID with a cluster",
            rcmd(aks_spec(
                json!({"target": {"aks": null, "containerInstance": {"resourceId": AKS_ID, "container": "app"}}}),
            )),
            "spec.target.containerInstance.resourceId",
        ),
        (
            "ACI without container",
            rcmd(aks_spec(
                json!({"target": {"aks": null, "containerInstance": {"resourceId": CG_ID}}}),
            )),
            "spec.target.containerInstance.container",
        ),
        (
            "shell with arguments",
            rcmd(aks_spec(
                json!({"target": {"aks": null, "containerInstance": {"resourceId": CG_ID, "container": "app", "shell": "/bin/sh -c"}}}),
            )),
            "spec.target.containerInstance.shell",
        ),
        (
            "file path escaping the directory",
            rcmd(aks_spec(
                json!({"files": [{"configMapRef": {"name": "m", "items": [{"key": "a", "path": "../etc/passwd"}]}}]}),
            )),
            "spec.files.configMapRef.items.path",
        ),
        (
            "absolute file path",
            rcmd(aks_spec(
                json!({"files": [{"secretRef": {"name": "s", "items": [{"key": "a", "path": "/etc/passwd"}]}}]}),
            )),
            "spec.files.secretRef.items.path",
        ),
        (
            "file from two sources",
            rcmd(aks_spec(
                json!({"files": [{"configMapRef": {"name": "m"}, "secretRef": {"name": "s"}}]}),
            )),
            "spec.files",
        ),
        (
            "negative ttl",
            rcmd(aks_spec(json!({"ttlSecondsAfterFinished": -5}))),
            "spec.ttlSecondsAfterFinished",
        ),
        (
            "credentialRef not a name",
            rcmd(aks_spec(json!({"credentialRef": {"name": "Azure Creds"}}))),
            "spec.credentialRef.name",
        ),
        (
            "export without source",
            kcx(json!({"source": {}, "secret": {"name": "s"}})),
            "spec.source",
        ),
        (
            "export with two sources",
            kcx(kcx_spec(json!({"source": {"aks": {"resourceId": AKS_ID}}}))),
            "spec.source",
        ),
        (
            "unknown role",
            kcx(kcx_spec(json!({"source": {"hybrid": {"role": "Owner"}}}))),
            "spec.source.hybrid.role",
        ),
        (
            "connected cluster ID of a managed cluster",
            kcx(kcx_spec(
                json!({"source": {"hybrid": {"connectedClusterResourceId": AKS_ID}}}),
            )),
            "spec.source.hybrid.connectedClusterResourceId",
        ),
        (
            "unknown secret format",
            kcx(kcx_spec(json!({"secret": {"format": "Helm"}}))),
            "spec.secret.format",
        ),
        (
            "unknown authentication",
            kcx(kcx_spec(json!({"authentication": "Password"}))),
            "spec.authentication",
        ),
        (
            "refresh interval not a duration",
            kcx(kcx_spec(json!({"refreshInterval": "soon"}))),
            "spec.refreshInterval",
        ),
        (
            "export without secret",
            kcx(kcx_spec(json!({"secret": null}))),
            "spec.secret",
        ),
    ];
    assert!(cases.len() >= 12);
    // kube-apiserver 1.20 names array elements without their index (`spec.files.secretRef.items.path`).
    // --validate=false: the API server must reject these, not kubectl's client-side check.
    let mut failures = Vec::new();
    for (what, manifest, field) in &cases {
        let out = Cluster::get().kubectl_stdin(
            &["create", "--validate=false", "-n", &ns, "-f", "-"],
            &manifest.to_string(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            failures.push(format!("{what}: was accepted"));
        } else if !stderr.contains(field) {
            failures.push(format!("{what}: the error does not name {field}: {stderr}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid manifests misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn new_resources_read_as_in_progress_before_any_controller() {
    let (client, ns) = setup("kstatus").await;
    let rc: RemoteCommand =
        serde_json::from_value(rcmd(aks_spec(json!({})))).expect("RemoteCommand");
    let created = Api::<RemoteCommand>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &rc)
        .await
        .expect("create");
    let export: KubeconfigExport =
        serde_json::from_value(kcx(kcx_spec(json!({})))).expect("KubeconfigExport");
    let created_export = Api::<KubeconfigExport>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &export)
        .await
        .expect("create");
    // Read back from the server, as kstatus would.
    for (kind, object) in [
        (
            "RemoteCommand",
            serde_json::to_value(
                Api::<RemoteCommand>::namespaced(client.clone(), &ns)
                    .get(&created.metadata.name.clone().unwrap())
                    .await
                    .unwrap(),
            )
            .unwrap(),
        ),
        (
            "KubeconfigExport",
            serde_json::to_value(
                Api::<KubeconfigExport>::namespaced(client.clone(), &ns)
                    .get(&created_export.metadata.name.clone().unwrap())
                    .await
                    .unwrap(),
            )
            .unwrap(),
        ),
    ] {
        let generation = object["metadata"]["generation"]
            .as_i64()
            .expect("generation");
        let observed = object["status"]["observedGeneration"].as_i64();
        assert_eq!(generation, 1, "{kind}");
        assert_eq!(
            observed,
            Some(0),
            "{kind}: status.observedGeneration must be present from creation on: {object}"
        );
        // kstatus: a present observedGeneration that differs from generation means InProgress.
        assert_ne!(
            observed,
            Some(generation),
            "{kind} would read as Current before any controller ran"
        );
    }
}

/// Runs kubectl once it succeeds: right after a CRD is Established, the API server may not list
/// the kind in discovery yet, and kubectl does not know the short name.
async fn kubectl_get(args: &[&str]) -> String {
    support::wait_until(
        Duration::from_secs(30),
        &format!("kubectl {args:?} to succeed"),
        || async {
            let out = Cluster::get().kubectl(args);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        },
    )
    .await
}

#[tokio::test]
async fn kubectl_get_shows_the_printer_columns() {
    let (client, ns) = setup("columns").await;
    let rc: RemoteCommand =
        serde_json::from_value(rcmd(aks_spec(json!({})))).expect("RemoteCommand");
    Api::<RemoteCommand>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &rc)
        .await
        .expect("create");
    let ar = ApiResource::erase::<RemoteCommand>(&());
    let status = json!({"apiVersion": "kubeinvoke.io/v1alpha1", "kind": "RemoteCommand", "status": {"phase": "Failed", "exitCode": 7, "observedGeneration": 1, "reason": "NonZeroExit"}});
    Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &ar)
        .patch_status(
            "bad",
            &PatchParams::apply("kubeinvoke-tests").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("status patch");
    let out = kubectl_get(&["get", "rcmd", "-n", &ns]).await;
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "TARGET", "PHASE", "EXIT", "AGE"], "{out}");
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["bad", AKS_ID, "Failed", "7"], "{out}");
    let wide = Cluster::get().kubectl_ok(&["get", "rcmd", "-n", &ns, "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap_or("").contains("REASON") && wide.contains("NonZeroExit"),
        "{wide}"
    );

    let export: KubeconfigExport =
        serde_json::from_value(kcx(kcx_spec(json!({})))).expect("KubeconfigExport");
    Api::<KubeconfigExport>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &export)
        .await
        .expect("create");
    let out = kubectl_get(&["get", "kcx", "-n", &ns]).await;
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "SECRET", "READY", "EXPIRES", "AGE"],
        "{out}"
    );
    assert!(out.contains("arc1-kubeconfig"), "{out}");
    // Credentials expire in the future; a `date` column would print that as `<invalid>`.
    let expires_at = "2099-06-30T12:00:00Z";
    let ar = ApiResource::erase::<KubeconfigExport>(&());
    let status = json!({"apiVersion": "kubeinvoke.io/v1alpha1", "kind": "KubeconfigExport", "status": {"observedGeneration": 1, "expiresAt": expires_at}});
    Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &ar)
        .patch_status(
            "bad",
            &PatchParams::apply("kubeinvoke-tests").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("status patch");
    let out = Cluster::get().kubectl_ok(&["get", "kcx", "-n", &ns]);
    // READY is empty (no conditions): read the cell under the EXPIRES header.
    let mut lines = out.lines();
    let column = lines
        .next()
        .and_then(|h| h.find("EXPIRES"))
        .expect("EXPIRES");
    let cell = lines
        .next()
        .and_then(|row| row.get(column..))
        .and_then(|rest| rest.split_whitespace().next());
    assert_eq!(
        cell,
        Some(expires_at),
        "EXPIRES shows the timestamp:\n{out}"
    );
    // Both kinds answer to their category.
    let all = Cluster::get().kubectl_ok(&["get", "kubeinvoke", "-n", &ns, "-o", "name"]);
    assert!(
        all.contains("remotecommand.kubeinvoke.io/bad")
            && all.contains("kubeconfigexport.kubeinvoke.io/bad"),
        "{all}"
    );
}

#[tokio::test]
async fn kubectl_explain_shows_descriptions() {
    let (_, _) = setup("explain").await;
    // The API server publishes new CRDs to its OpenAPI document asynchronously.
    let out = support::wait_until(
        Duration::from_secs(30),
        "kubectl explain to know RemoteCommand",
        || async {
            let out = Cluster::get().kubectl(&["explain", "remotecommand.spec.target"]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        },
    )
    .await;
    // explain wraps long lines; compare with whitespace folded.
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for expected in [
        "exactly one of `aks` or `containerInstance`",
        "aks <Object>",
        "containerInstance <Object>",
        "what `az aks command invoke` does",
    ] {
        assert!(out.contains(expected), "explain lacks {expected:?}:\n{out}");
    }
    let out = Cluster::get().kubectl_ok(&["explain", "kubeconfigexport.spec.secret.format"]);
    assert!(out.contains("ArgoCD") || out.contains("Argo CD"), "{out}");
}
