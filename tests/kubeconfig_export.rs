//! End to end: KubeconfigExport against the emulator (ARM) and the local kube-apiserver v1.20.2.
//! Every test has its own namespace, emulator and operator; the emulator's kubeconfigs point at the
//! local API server with a working token, so an exported kubeconfig can be tried with kubectl.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::emulator::{CLIENT_SECRET, world};
use support::kcx::{
    EXPORT_TIMEOUT, Env, aks, aks_cluster, assert_kubeconfig_works,
    bad_content_keeps_previous_secret, condition, condition_message, connected_cluster, data,
    hybrid, spec, text,
};
use support::{Cluster, wait_until};

async fn env(prefix: &str) -> Env {
    Env::start(prefix, &world("", ""), &[]).await
}

// ---- Secret formats ----

#[tokio::test]
async fn kubeconfig_format_works_with_kubectl() {
    let env = env("kcx-kubeconfig").await;
    env.create(
        "edge",
        spec(aks("aks1", "User"), "edge-kubeconfig", "Kubeconfig"),
    )
    .await;
    let k = env.wait_exported("edge").await;
    let s = k.status.clone().unwrap();
    assert_eq!(s.secret_name.as_deref(), Some("edge-kubeconfig"));
    assert_eq!(s.server.as_deref(), Some(Cluster::get().server.as_str()));
    assert_eq!(s.credential_name.as_deref(), Some("clusterUser"));
    assert!(s.content_hash.unwrap().starts_with("sha256:"));
    assert!(s.last_refresh_time.is_some() && s.next_refresh_time.is_some());

    let secret = env.secret("edge-kubeconfig").await;
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("kubeinvoke")
    );
    let owner = &secret.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(owner.uid, k.metadata.uid.clone().unwrap());
    assert_eq!(owner.controller, Some(true));
    assert_kubeconfig_works(&text(&secret, "kubeconfig"), &env.ns);
    env.wait_events("edge", "Exported", 1).await;
}

#[tokio::test]
async fn flux_format_works_with_kubectl() {
    let env = env("kcx-flux").await;
    env.create("edge", spec(aks("aks1", "User"), "edge-flux", "Flux"))
        .await;
    env.wait_exported("edge").await;
    let secret = env.secret("edge-flux").await;
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_kubeconfig_works(&text(&secret, "value"), &env.ns);
}

#[tokio::test]
async fn cluster_api_format_works_with_kubectl() {
    let env = env("kcx-capi").await;
    env.create(
        "edge",
        spec(aks("aks1", "Admin"), "aks1-kubeconfig", "ClusterAPI"),
    )
    .await;
    let k = env.wait_exported("edge").await;
    assert_eq!(
        k.status.unwrap().credential_name.as_deref(),
        Some("clusterAdmin")
    );
    let secret = env.secret("aks1-kubeconfig").await;
    assert_eq!(secret.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("cluster.x-k8s.io/cluster-name")
            .map(String::as_str),
        Some("aks1")
    );
    assert_kubeconfig_works(&text(&secret, "value"), &env.ns);
}

#[tokio::test]
async fn argocd_format_has_server_bearer_token_and_ca() {
    let env = env("kcx-argocd").await;
    env.create("edge", spec(aks("aks1", "User"), "aks1-argocd", "ArgoCD"))
        .await;
    let k = env.wait_exported("edge").await;
    let secret = env.secret("aks1-argocd").await;
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("argocd.argoproj.io/secret-type")
            .map(String::as_str),
        Some("cluster")
    );
    assert_eq!(text(&secret, "server"), k.status.unwrap().server.unwrap());
    assert_eq!(text(&secret, "server"), Cluster::get().server);
    assert_eq!(text(&secret, "name"), "aks1");
    let config: Value = serde_json::from_str(&text(&secret, "config")).expect("config is JSON");
    assert_eq!(
        config["bearerToken"].as_str(),
        Some(Cluster::get().user_token.as_str())
    );
    assert!(
        config["tlsClientConfig"]["caData"]
            .as_str()
            .is_some_and(|ca| !ca.is_empty()),
        "tlsClientConfig.caData: {}",
        config["tlsClientConfig"]
    );
}

// ---- AKS Arc (hybrid) ----

#[tokio::test]
async fn hybrid_user_kubeconfig_is_exported_with_default_api_version() {
    // Without spec.source.hybrid.apiVersion the operator uses HybridContainerService 2024-01-01
    // (final state via Azure-AsyncOperation). The emulator here accepts only that version.
    let env = Env::start(
        "kcx-arc-user",
        &world("", ""),
        &["--hybrid-api-versions", "2024-01-01"],
    )
    .await;
    env.create(
        "arc",
        spec(hybrid("arc1", "User"), "arc1-kubeconfig", "Kubeconfig"),
    )
    .await;
    env.wait_exported("arc").await;
    assert_kubeconfig_works(
        &text(&env.secret("arc1-kubeconfig").await, "kubeconfig"),
        &env.ns,
    );
    let requests = env.emulator.requests().await.to_string();
    assert!(
        requests.contains("listUserKubeconfig"),
        "listUserKubeconfig was called: {requests}"
    );
    // This api-version's 202 offers Azure-AsyncOperation too: the operator polled it.
    let counters = env.emulator.counters().await;
    assert!(
        counters["requests"]["hybrid.operationStatus"].as_u64() >= Some(1),
        "{counters}"
    );
}

#[tokio::test]
async fn hybrid_preview_api_version_is_used_when_asked() {
    // The emulator accepts only 2026-04-01-preview here, so an export proves the operator sent it.
    // (Both LRO styles are unit-tested in azure::hybrid.)
    let env = Env::start(
        "kcx-arc-preview",
        &world("", ""),
        &["--hybrid-api-versions", "2026-04-01-preview"],
    )
    .await;
    let mut source = hybrid("arc1", "User");
    source["hybrid"]["apiVersion"] = serde_json::json!("2026-04-01-preview");
    env.create("arc", spec(source, "arc1-kubeconfig", "Kubeconfig"))
        .await;
    env.wait_exported("arc").await;
    assert_kubeconfig_works(
        &text(&env.secret("arc1-kubeconfig").await, "kubeconfig"),
        &env.ns,
    );
    let counters = env.emulator.counters().await;
    assert_eq!(
        counters["status"]["hybrid.listKubeconfig"]["202"].as_u64(),
        Some(1),
        "{counters}"
    );
    // This api-version's 202 carries Location (final-state-via location) and no
    // Azure-AsyncOperation: the operator followed Location alone.
    let requests = &counters["requests"];
    assert!(
        requests["hybrid.operationResult"].as_u64() >= Some(1),
        "{counters}"
    );
    assert_eq!(
        requests["hybrid.operationStatus"].as_u64(),
        None,
        "{counters}"
    );
}

#[tokio::test]
async fn hybrid_admin_kubeconfig_is_exported() {
    let env = env("kcx-arc-admin").await;
    env.create(
        "arc",
        spec(hybrid("arc1", "Admin"), "arc1-admin", "Kubeconfig"),
    )
    .await;
    env.wait_exported("arc").await;
    assert_kubeconfig_works(
        &text(&env.secret("arc1-admin").await, "kubeconfig"),
        &env.ns,
    );
    let requests = env.emulator.requests().await.to_string();
    assert!(
        requests.contains("listAdminKubeconfig"),
        "listAdminKubeconfig was called: {requests}"
    );
}

#[tokio::test]
async fn hybrid_operation_that_takes_several_polls_completes() {
    let world = world("", &connected_cluster("arc-slow", "lroPolls: 3"));
    let env = Env::start("kcx-arc-slow", &world, &[]).await;
    env.create(
        "arc",
        spec(hybrid("arc-slow", "User"), "arc-slow", "Kubeconfig"),
    )
    .await;
    env.wait_exported("arc").await;
    let c = env.emulator.counters().await["requests"].clone();
    let polls = c["hybrid.operationStatus"].as_u64().unwrap_or(0)
        + c["hybrid.operationResult"].as_u64().unwrap_or(0);
    assert!(polls >= 4, "3 in-progress polls and a final one: {c}");
    assert_eq!(c["hybrid.listKubeconfig"].as_u64(), Some(1), "{c}");
}

#[tokio::test]
async fn hybrid_operation_failure_reports_arm_code_and_message() {
    let world = world(
        "",
        &connected_cluster(
            "arc-failing",
            "lroPolls: 1, lroError: {code: KubeconfigRetrievalFailed, message: the provisioned cluster is not reachable}",
        ),
    );
    let env = Env::start("kcx-arc-failing", &world, &[]).await;
    env.create(
        "arc",
        spec(hybrid("arc-failing", "User"), "arc-failing", "Kubeconfig"),
    )
    .await;
    let k = env
        .wait_reason("arc", "ArmOperationFailed", EXPORT_TIMEOUT)
        .await;
    assert_eq!(condition(&k, "Ready").as_deref(), Some("False"));
    assert_eq!(condition(&k, "Stalled").as_deref(), Some("True"));
    let message = condition_message(&k, "Ready");
    assert!(
        message.contains("KubeconfigRetrievalFailed")
            && message.contains("the provisioned cluster is not reachable"),
        "{message}"
    );
    assert!(
        env.secrets()
            .get_opt("arc-failing")
            .await
            .unwrap()
            .is_none()
    );
}

// ---- authentication: Token ----

#[tokio::test]
async fn token_authentication_replaces_exec_user_with_bearer_token() {
    let env = env("kcx-token").await;
    let mut s = spec(aks("aks-aad", "User"), "aad-kubeconfig", "Kubeconfig");
    s["authentication"] = json!("Token");
    env.create("aad", s).await;
    let k = env.wait_exported("aad").await;
    assert!(
        k.status.unwrap().expires_at.is_some(),
        "the token's expiry is known"
    );
    let kubeconfig: Value =
        serde_saphyr::from_str(&text(&env.secret("aad-kubeconfig").await, "kubeconfig"))
            .expect("kubeconfig YAML");
    let users = kubeconfig["users"].as_array().expect("users");
    assert!(!users.is_empty());
    for user in users {
        assert!(user["user"].get("exec").is_none(), "no exec user: {user}");
        assert!(
            user["user"]["token"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "bearer token"
        );
    }
}

#[tokio::test]
async fn flux_with_exec_user_and_passthrough_is_invalid_spec() {
    let env = env("kcx-flux-exec").await;
    env.create("aad", spec(aks("aks-aad", "User"), "aad-flux", "Flux"))
        .await;
    let k = env.wait_reason("aad", "InvalidSpec", EXPORT_TIMEOUT).await;
    assert_eq!(condition(&k, "Stalled").as_deref(), Some("True"));
    let message = condition_message(&k, "Ready");
    assert!(
        message.contains("authentication: Token"),
        "the message says how to fix it: {message}"
    );
    assert!(env.secrets().get_opt("aad-flux").await.unwrap().is_none());
}

#[tokio::test]
async fn token_is_refreshed_before_it_expires() {
    // 34 s tokens: the refresh is due at 90% of the lifetime (~30.6 s, just above the 30 s floor).
    let env = Env::start(
        "kcx-token-refresh",
        &world("", ""),
        &["--token-lifetime-seconds", "34"],
    )
    .await;
    let mut s = spec(aks("aks-aad", "User"), "aad-kubeconfig", "Kubeconfig");
    s["authentication"] = json!("Token");
    env.create("aad", s).await;
    let exported = env.wait_exported("aad").await;
    let exported_rv = exported.metadata.resource_version.clone().unwrap();
    let first = exported.status.unwrap();
    let first_expiry = first.expires_at.clone().expect("expiresAt").0;
    let next = first.next_refresh_time.clone().expect("nextRefreshTime").0;
    assert!(
        next < first_expiry,
        "refresh ({next}) before expiry ({first_expiry})"
    );
    let before = data(&env.secret("aad-kubeconfig").await);

    let api = env.exports();
    let refreshed = wait_until(
        Duration::from_secs(60),
        "a refresh with a new token",
        || {
            let api = api.clone();
            async move {
                let k = api.get("aad").await.ok()?;
                let s = k.status.clone()?;
                let expiry = s.expires_at.as_ref()?.0;
                (expiry > first_expiry && s.reason.as_deref() == Some("Exported")).then_some(k)
            }
        },
    )
    .await;
    // A periodic refresh of a ready export is one write of the export: its outcome (no
    // "Refreshing" status before it; the Secret stays valid meanwhile).
    let writes = modifications_between(&api, &exported_rv, &refreshed).await;
    assert_eq!(writes, 1, "writes of the export during one refresh");
    let refreshed = refreshed.status.unwrap();
    let refresh_time = refreshed.last_refresh_time.clone().unwrap().0;
    assert!(
        refresh_time < first_expiry,
        "refreshed at {refresh_time}, before the old token expired at {first_expiry}"
    );
    assert_ne!(
        data(&env.secret("aad-kubeconfig").await),
        before,
        "the Secret holds the new token"
    );
    env.wait_events("aad", "Exported", 2).await;
}

/// How many times `name` was modified after resourceVersion `from`, up to and including `to`
/// (replayed from the API server's watch history).
async fn modifications_between(
    api: &kube::Api<kubeinvoke::api::KubeconfigExport>,
    from: &str,
    to: &kubeinvoke::api::KubeconfigExport,
) -> usize {
    use futures::StreamExt;
    let name = to.metadata.name.clone().unwrap();
    let last = to.metadata.resource_version.clone().unwrap();
    let params = kube::api::WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(2);
    let mut events = api.watch(&params, from).await.expect("watch").boxed();
    let mut count = 0;
    while let Some(event) = events.next().await {
        if let kube::core::WatchEvent::Modified(k) = event.expect("watch event") {
            count += 1;
            if k.metadata.resource_version.as_deref() == Some(last.as_str()) {
                return count;
            }
        }
    }
    panic!("the watch from {from} never reached resourceVersion {last} ({count} modifications)");
}

// ---- refreshes ----

#[tokio::test]
async fn refresh_with_unchanged_content_leaves_secret_alone() {
    let env = env("kcx-unchanged").await;
    env.create(
        "edge",
        spec(aks("aks1", "User"), "edge-kubeconfig", "Kubeconfig"),
    )
    .await;
    let first = env.wait_exported("edge").await.status.unwrap();
    let rv = env
        .secret("edge-kubeconfig")
        .await
        .metadata
        .resource_version;
    let fetches = env.requests("aks.listUserCredential").await;

    // A spec change makes the operator fetch again at once.
    env.set_refresh_interval("edge", "2h").await;
    let second = env.wait_exported("edge").await.status.unwrap();
    assert_eq!(
        env.requests("aks.listUserCredential").await,
        fetches + 1,
        "fetched again"
    );
    assert!(second.last_refresh_time >= first.last_refresh_time);
    assert_eq!(second.content_hash, first.content_hash);
    assert_eq!(
        env.secret("edge-kubeconfig")
            .await
            .metadata
            .resource_version,
        rv,
        "the Secret was not written"
    );
    // Reconciles of one export run one after the other: once the Event of a later reconcile
    // (an invalid interval) is there, an Exported Event of the refresh would be too.
    env.set_refresh_interval("edge", "30s").await;
    env.wait_events("edge", "InvalidSpec", 1).await;
    assert_eq!(
        env.event_count("edge", "Exported").await,
        1,
        "no second Exported Event"
    );
}

#[tokio::test]
async fn rotated_source_content_updates_secret_with_event() {
    let cluster = Cluster::get();
    let before = world(&aks_cluster("aks-rot", &cluster.user_token, ""), "");
    let env = Env::start("kcx-rotated", &before, &[]).await;
    env.create(
        "rot",
        spec(aks("aks-rot", "User"), "rot-kubeconfig", "Kubeconfig"),
    )
    .await;
    let first = env.wait_exported("rot").await.status.unwrap();
    let old = data(&env.secret("rot-kubeconfig").await);

    let after = world(&aks_cluster("aks-rot", &cluster.admin_token, ""), "");
    env.emulator.put_world(&after).await;
    env.set_refresh_interval("rot", "2h").await;
    let second = env.wait_exported("rot").await.status.unwrap();
    assert_ne!(second.content_hash, first.content_hash);
    let secret = env.secret("rot-kubeconfig").await;
    assert_ne!(
        data(&secret),
        old,
        "the Secret holds the rotated kubeconfig"
    );
    assert_kubeconfig_works(&text(&secret, "kubeconfig"), &env.ns);
    env.wait_events("rot", "Exported", 2).await;
    assert_eq!(env.event_count("rot", "Exported").await, 2);
}

#[tokio::test]
async fn transient_arm_errors_are_retried_until_export() {
    let env = env("kcx-transient").await;
    env.emulator
        .put_faults(r#"{"aks.listUserCredential": {"error503Rate": 1.0}}"#)
        .await;
    env.create(
        "edge",
        spec(aks("aks1", "User"), "edge-kubeconfig", "Kubeconfig"),
    )
    .await;
    let k = env
        .wait_reason("edge", "Retrying", Duration::from_secs(45))
        .await;
    assert_eq!(condition(&k, "Reconciling").as_deref(), Some("True"));
    assert_eq!(condition(&k, "Ready").as_deref(), Some("False"));
    assert_eq!(condition(&k, "Stalled"), None, "not terminal");

    env.emulator.put_faults("{}").await;
    let k = env
        .wait_reason("edge", "Exported", Duration::from_secs(45))
        .await;
    assert_eq!(condition(&k, "Ready").as_deref(), Some("True"));
    assert!(
        env.secrets()
            .get_opt("edge-kubeconfig")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn format_change_replaces_the_secret_type_and_keys() {
    let env = env("kcx-format-change").await;
    env.create("edge", spec(aks("aks1", "User"), "aks1", "Kubeconfig"))
        .await;
    env.wait_exported("edge").await;
    env.exports()
        .patch(
            "edge",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"secret": {"format": "ClusterAPI"}}})),
        )
        .await
        .unwrap();
    env.wait_exported("edge").await;
    let secret = env.secret("aks1").await;
    assert_eq!(secret.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
    let keys: Vec<_> = data(&secret).into_keys().collect();
    assert_eq!(keys, ["value"], "only the Cluster API key is left");
    assert_kubeconfig_works(&text(&secret, "value"), &env.ns);
    // Same Secret, different note: a second Event, not a repeat of the first one's.
    env.wait_events("edge", "Exported", 2).await;
    let notes = exported_notes(&env, "edge").await;
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].starts_with("wrote Secret aks1") && notes[1].contains("Secret layout changed"),
        "{notes:?}"
    );
}

#[tokio::test]
async fn renamed_secret_replaces_the_old_one() {
    let env = env("kcx-rename").await;
    env.create("edge", spec(aks("aks1", "User"), "old-name", "Kubeconfig"))
        .await;
    env.wait_exported("edge").await;
    env.exports()
        .patch(
            "edge",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"secret": {"name": "new-name"}}})),
        )
        .await
        .unwrap();
    let k = env.wait_exported("edge").await;
    assert_eq!(k.status.unwrap().secret_name.as_deref(), Some("new-name"));
    assert_kubeconfig_works(&text(&env.secret("new-name").await, "kubeconfig"), &env.ns);
    assert!(
        env.secrets().get_opt("old-name").await.unwrap().is_none(),
        "the old Secret was deleted"
    );
    env.wait_events("edge", "Exported", 2).await;
    // The second note names the new Secret; folded into the first Event's series it would be lost.
    let notes = exported_notes(&env, "edge").await;
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("old-name") && notes[1].contains("old-name → new-name"),
        "{notes:?}"
    );
}

/// Notes of the `Exported` Events about export `name`, oldest first, one per Event object; an
/// Event that counts repeats (`series`) must have had the same note each time, so it is one entry.
async fn exported_notes(env: &Env, name: &str) -> Vec<String> {
    let mut events: Vec<_> = env
        .events()
        .await
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some("Exported"))
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    events
        .into_iter()
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

// ---- Secrets the operator must not touch, and bad content ----

#[tokio::test]
async fn invalid_base64_keeps_previous_secret() {
    keeps_previous_secret_on("kcx-bad-base64", "invalidBase64").await;
}

#[tokio::test]
async fn invalid_yaml_keeps_previous_secret() {
    keeps_previous_secret_on("kcx-bad-yaml", "invalidYaml").await;
}

#[tokio::test]
async fn empty_kubeconfig_keeps_previous_secret() {
    keeps_previous_secret_on("kcx-empty", "empty").await;
}

#[tokio::test]
async fn empty_kubeconfig_list_keeps_previous_secret() {
    keeps_previous_secret_on("kcx-empty-list", "emptyList").await;
}

#[tokio::test]
async fn kubeconfig_without_clusters_keeps_previous_secret() {
    keeps_previous_secret_on("kcx-no-clusters", "noClusters").await;
}

#[tokio::test]
async fn refresh_interval_under_a_minute_is_invalid_spec() {
    let env = env("kcx-interval").await;
    let mut s = spec(aks("aks1", "User"), "edge-kubeconfig", "Kubeconfig");
    s["refreshInterval"] = json!("30s");
    env.create("edge", s).await;
    let k = env.wait_reason("edge", "InvalidSpec", EXPORT_TIMEOUT).await;
    assert!(
        condition_message(&k, "Ready").contains("at least 1m"),
        "{:?}",
        k.status
    );
    assert_eq!(env.requests("aks.listUserCredential").await, 0);
}

// ---- credentials and secrecy ----

#[tokio::test]
async fn no_kubeconfig_or_token_content_in_logs_or_events() {
    let env = env("kcx-secrecy").await;
    env.create("plain", spec(aks("aks1", "User"), "plain", "Kubeconfig"))
        .await;
    let mut s = spec(aks("aks-aad", "User"), "aad", "ArgoCD");
    s["authentication"] = json!("Token");
    env.create("aad", s).await;
    env.create("arc", spec(hybrid("arc1", "Admin"), "arc", "Flux"))
        .await;
    for name in ["plain", "aad", "arc"] {
        env.wait_exported(name).await;
    }
    let aad_config: Value =
        serde_json::from_str(&text(&env.secret("aad").await, "config")).unwrap();
    let aad_token = aad_config["bearerToken"].as_str().unwrap().to_string();
    let ca = support::kcx::local_ca();
    let secrets = [
        (
            "the kubeconfig user token",
            Cluster::get().user_token.clone(),
        ),
        ("the AAD bearer token", aad_token),
        ("the client secret", CLIENT_SECRET.to_string()),
        ("the CA data", ca[..40].to_string()),
    ];
    let logs = env.operator.logs();
    assert!(
        logs.contains("kubeconfig Secret written"),
        "the log was captured"
    );
    let events: Vec<String> = env
        .events()
        .await
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    assert!(events.len() >= 3, "Events were published: {events:?}");
    for (what, value) in &secrets {
        assert!(
            !logs.contains(value.as_str()),
            "{what} is in the operator's log"
        );
        for e in &events {
            assert!(!e.contains(value.as_str()), "{what} is in an Event: {e}");
        }
        for name in ["plain", "aad", "arc"] {
            let status =
                serde_json::to_string(&env.exports().get(name).await.unwrap().status).unwrap();
            assert!(
                !status.contains(value.as_str()),
                "{what} is in the status of {name}"
            );
        }
    }
}

/// GitOps applies an export and its credential Secret in no fixed order: an export created first
/// waits (not Ready, its reason shown) and is exported within seconds of the Secret appearing,
/// without being touched.
#[tokio::test]
async fn an_export_created_before_its_credential_secret_converges() {
    let env = env("kcx-late-cred").await;
    let mut s = spec(aks("aks1", "User"), "late-kubeconfig", "Kubeconfig");
    s["credentialRef"] = json!({"name": "late-credentials"});
    env.create("late", s).await;
    let k = env
        .wait_reason("late", "CredentialNotFound", EXPORT_TIMEOUT)
        .await;
    assert_ne!(condition(&k, "Ready").as_deref(), Some("True"));
    support::credential_secret(&env.client, &env.ns, "late-credentials").await;
    let exports = env.exports();
    wait_until(
        Duration::from_secs(10),
        "the export to be Ready within 10 s of its Secret",
        || {
            let exports = exports.clone();
            async move {
                let k = exports.get("late").await.ok()?;
                (condition(&k, "Ready").as_deref() == Some("True")).then_some(())
            }
        },
    )
    .await;
}

async fn keeps_previous_secret_on(prefix: &str, fault: &str) {
    let token = &Cluster::get().user_token;
    let env = Env::start(prefix, &world(&aks_cluster("aks-f", token, ""), ""), &[]).await;
    bad_content_keeps_previous_secret(&env, fault).await;
}
