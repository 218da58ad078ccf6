//! Tenants are adversaries, and so is what ARM sends: attacks through KubeconfigExports, against
//! the operator as users install it (the chart on the node, its pods with their own ServiceAccount).
//! Each test is one attack, named for it, and fails if the defence is removed.

mod support;

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use serde_json::json;
use tokio::sync::Mutex;

use support::Cluster;
use support::emulator::world;
use support::kcx::{
    EXPORT_TIMEOUT, Env, aks, aks_cluster, assert_kubeconfig_works,
    bad_content_keeps_previous_secret, condition, data, spec, text,
};

/// One release's pods at a time on the 2-core node.
static NODE: Mutex<()> = Mutex::const_new(());

/// A chart-installed operator serving a fresh namespace, with the emulator's default world.
async fn env(prefix: &str) -> Env {
    Env::on_chart(prefix, &world("", "")).await
}

/// A world whose cluster `aks-f` can be made to answer bad content later.
async fn faulty(prefix: &str) -> Env {
    let token = &Cluster::get().user_token;
    Env::on_chart(prefix, &world(&aks_cluster("aks-f", token, ""), "")).await
}

/// A tenant asks for `kubeinvoke.io/allow-as-file` on its exported kubeconfig, which would let a
/// runner who may not read Secrets send it into a command: refused before anything is fetched.
#[tokio::test]
async fn an_export_cannot_label_its_kubeconfig_sendable_as_a_file() {
    let _turn = NODE.lock().await;
    let env = env("kcx-reserved").await;
    let mut s = spec(aks("aks1", "User"), "smuggled", "Kubeconfig");
    s["secret"]["labels"] = json!({"kubeinvoke.io/allow-as-file": "true"});
    env.create("edge", s).await;
    let k = env.wait_reason("edge", "InvalidSpec", EXPORT_TIMEOUT).await;
    let message = k.status.unwrap().message.unwrap_or_default();
    assert!(message.contains("kubeinvoke.io/allow-as-file"), "{message}");
    assert!(env.secrets().get_opt("smuggled").await.unwrap().is_none());
    assert_eq!(env.requests("aks.listUserCredential").await, 0);
}

/// Whatever the order of format changes, the Secret holds exactly the current format's keys and
/// labels: no full kubeconfig left behind in an Argo CD Secret, no Argo CD cluster label left on a
/// Flux Secret, no label a user asked for and then dropped. Labels someone else put on the Secret
/// stay. Every ordered pair of the four formats is crossed once.
#[tokio::test]
async fn a_format_switch_cannot_leave_a_stale_credential_in_the_secret() {
    let _turn = NODE.lock().await;
    let env = env("kcx-transitions").await;
    let expected = |format: &str| -> (Vec<&str>, Option<&str>) {
        match format {
            "Kubeconfig" => (vec!["kubeconfig"], None),
            "Flux" => (vec!["value"], None),
            "ClusterAPI" => (vec!["value"], Some("cluster.x-k8s.io/cluster-name")),
            _ => (
                vec!["config", "name", "server"],
                Some("argocd.argoproj.io/secret-type"),
            ),
        }
    };
    let own_labels = [
        "cluster.x-k8s.io/cluster-name",
        "argocd.argoproj.io/secret-type",
        "team",
    ];
    let path = [
        "Kubeconfig",
        "Flux",
        "ClusterAPI",
        "ArgoCD",
        "Kubeconfig",
        "ClusterAPI",
        "Flux",
        "ArgoCD",
        "ClusterAPI",
        "Kubeconfig",
        "ArgoCD",
        "Flux",
        "Kubeconfig",
    ];
    let mut first = spec(aks("aks1", "User"), "fleet-aks1", path[0]);
    first["secret"]["labels"] = json!({"team": "a"});
    env.create("edge", first).await;
    env.wait_exported("edge").await;
    for (step, format) in path.iter().enumerate().skip(1) {
        // Someone else labels the Secret; that label is theirs and stays (while the Secret does).
        env.secrets()
            .patch(
                "fleet-aks1",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"metadata": {"labels": {"noted-by": "audit"}}})),
            )
            .await
            .unwrap();
        let type_before = env.secret("fleet-aks1").await.type_;
        // The user's label is asked for on even steps only.
        let labels = if step % 2 == 0 {
            json!({"team": "a"})
        } else {
            json!(null)
        };
        env.exports()
            .patch(
                "edge",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(
                    json!({"spec": {"secret": {"format": format, "labels": labels}}}),
                ),
            )
            .await
            .unwrap();
        env.wait_exported("edge").await;
        let secret = env.secret("fleet-aks1").await;
        let keys: Vec<String> = data(&secret).into_keys().collect();
        let (want_keys, own_label) = expected(format);
        let transition = format!("{} -> {format}", path[step - 1]);
        assert_eq!(keys, want_keys, "{transition}: data keys");
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        for label in own_labels {
            let want = own_label == Some(label) || (label == "team" && step % 2 == 0);
            assert_eq!(
                labels.contains_key(label),
                want,
                "{transition}: label {label} in {labels:?}"
            );
        }
        if secret.type_ == type_before {
            assert_eq!(
                labels.get("noted-by").map(String::as_str),
                Some("audit"),
                "{transition}: someone else's label was removed"
            );
        }
    }
}

#[tokio::test]
async fn an_export_cannot_overwrite_a_secret_it_does_not_own() {
    let _turn = NODE.lock().await;
    let env = env("kcx-conflict").await;
    let foreign: Secret = serde_json::from_value(json!({
        "metadata": {"name": "taken"},
        "stringData": {"kubeconfig": "someone else's"},
    }))
    .unwrap();
    let foreign = env
        .secrets()
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    env.create("edge", spec(aks("aks1", "User"), "taken", "Kubeconfig"))
        .await;
    let k = env
        .wait_reason("edge", "SecretConflict", EXPORT_TIMEOUT)
        .await;
    assert_eq!(condition(&k, "Stalled").as_deref(), Some("True"));
    let now = env.secret("taken").await;
    assert_eq!(
        now.metadata.resource_version,
        foreign.metadata.resource_version
    );
    assert_eq!(text(&now, "kubeconfig"), "someone else's");
    assert!(now.metadata.owner_references.unwrap_or_default().is_empty());
    env.wait_events("edge", "SecretConflict", 1).await;
}

/// A hand-made Argo CD cluster Secret moves to an export without leaving Argo CD: whoever may write
/// it hands it over with `kubeinvoke.io/adopt: KubeconfigExport/<name>`, and only that export takes
/// it over (same object, its own keys kept); an export merely naming it still meets SecretConflict.
#[tokio::test]
async fn an_export_takes_over_only_the_secret_handed_over_to_it() {
    let _turn = NODE.lock().await;
    let env = env("kcx-adopt").await;
    let hand_made: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": "aks1-cluster",
            "labels": {"argocd.argoproj.io/secret-type": "cluster"},
            "annotations": {"kubeinvoke.io/adopt": "KubeconfigExport/aks1"},
        },
        "stringData": {"name": "aks1", "server": "https://old.example", "config": "{}", "project": "platform"},
    }))
    .unwrap();
    let hand_made = env
        .secrets()
        .create(&PostParams::default(), &hand_made)
        .await
        .unwrap();

    env.create(
        "squatter",
        spec(aks("aks1", "User"), "aks1-cluster", "ArgoCD"),
    )
    .await;
    let k = env
        .wait_reason("squatter", "SecretConflict", EXPORT_TIMEOUT)
        .await;
    let message = k.status.unwrap().message.unwrap_or_default();
    assert!(
        message.contains("kubeinvoke.io/adopt=KubeconfigExport/squatter"),
        "the conflict says how to hand the Secret over: {message}"
    );
    assert_eq!(
        env.secret("aks1-cluster").await.metadata.resource_version,
        hand_made.metadata.resource_version
    );

    env.create("aks1", spec(aks("aks1", "User"), "aks1-cluster", "ArgoCD"))
        .await;
    let adopter = env.wait_exported("aks1").await;
    let now = env.secret("aks1-cluster").await;
    assert_eq!(now.metadata.uid, hand_made.metadata.uid, "the same Secret");
    let owners = now.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owners
            .iter()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == adopter.metadata.uid.as_ref()),
        "the export controls the Secret now: {owners:?}"
    );
    assert_ne!(text(&now, "server"), "https://old.example");
    assert!(
        text(&now, "config").contains("tlsClientConfig"),
        "{}",
        text(&now, "config")
    );
    assert_eq!(
        text(&now, "project"),
        "platform",
        "keys the export does not write stay"
    );
    assert_eq!(
        now.metadata
            .labels
            .unwrap_or_default()
            .get("argocd.argoproj.io/secret-type")
            .map(String::as_str),
        Some("cluster")
    );
}

/// A `proxy-url` in ARM's kubeconfig is dropped: the exported one connects directly.
#[tokio::test]
async fn arm_cannot_route_an_exported_kubeconfig_through_a_proxy() {
    let _turn = NODE.lock().await;
    let token = &Cluster::get().user_token;
    let env = Env::on_chart(
        "kcx-proxy",
        &world(
            &aks_cluster("aks-p", token, "kubeconfigFault: proxyUrl"),
            "",
        ),
    )
    .await;
    env.create(
        "edge",
        spec(aks("aks-p", "User"), "edge-kubeconfig", "Kubeconfig"),
    )
    .await;
    env.wait_exported("edge").await;
    let secret = env.secret("edge-kubeconfig").await;
    let kubeconfig = text(&secret, "kubeconfig");
    assert!(!kubeconfig.contains("proxy-url"), "{kubeconfig}");
    assert_kubeconfig_works(&kubeconfig, &env.ns);
}

#[tokio::test]
async fn an_export_cannot_use_another_namespaces_credential() {
    let _turn = NODE.lock().await;
    let env = env("kcx-isolation").await;
    // The credential Secret exists, but only in another namespace.
    let other = support::namespace(&env.client, "kcx-other").await;
    support::credential_secret(&env.client, &other, "elsewhere").await;
    let mut s = spec(aks("aks1", "User"), "edge-kubeconfig", "Kubeconfig");
    s["credentialRef"] = json!({"name": "elsewhere"});
    env.create("edge", s).await;
    let k = env
        .wait_reason("edge", "CredentialNotFound", EXPORT_TIMEOUT)
        .await;
    // Waited for (it may still appear), never Ready.
    assert_ne!(condition(&k, "Ready").as_deref(), Some("True"));
    assert_eq!(env.requests("aks.listUserCredential").await, 0);
    assert!(
        env.secrets()
            .get_opt("edge-kubeconfig")
            .await
            .unwrap()
            .is_none()
    );
}

/// ARM's answer is not trusted blindly: a kubeconfig that turns TLS verification off, or whose user
/// runs something other than kubelogin (here `sh -c`), is refused like broken content; the Secret
/// Argo CD or Flux reads is never given it.
#[tokio::test]
async fn arm_cannot_turn_tls_verification_off_in_an_exported_kubeconfig() {
    let _turn = NODE.lock().await;
    let env = faulty("kcx-insecure").await;
    bad_content_keeps_previous_secret(&env, "insecureSkipTlsVerify").await;
}

#[tokio::test]
async fn arm_cannot_make_a_consumer_run_a_foreign_exec_plugin() {
    let _turn = NODE.lock().await;
    let env = faulty("kcx-foreign-exec").await;
    bad_content_keeps_previous_secret(&env, "foreignExec").await;
}
