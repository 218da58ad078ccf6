//! KubeconfigExportSet end to end, served by the operator as the chart installs it: the kubeconfig
//! of every cluster a selector finds, a cluster added to the emulator's world picked up within one
//! discovery interval, one removed let go only after successful listings without it — and every
//! Secret kept while ARM answers 403, 500 or an empty list.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::{Api, ListParams, PostParams};
use kubeinvoke::api::{KubeconfigExport, KubeconfigExportSet};
use serde_json::{Value, json};

use support::emulator::{SUBSCRIPTION, kubeconfig_spec, world};
use support::kcx::{CREDENTIALS, Env};
use support::{Cluster, wait_until};

/// One discovery interval (the least the spec allows) plus the time to act on it.
const INTERVAL: Duration = Duration::from_secs(100);

fn prod(name: &str) -> String {
    format!(
        "          - {{name: {name}, tags: {{env: prod}}, {}}}",
        kubeconfig_spec(Cluster::get())
    )
}

fn set_spec() -> Value {
    json!({
        "selector": {"subscriptions": [SUBSCRIPTION], "matchTags": {"env": "prod"}},
        "template": {
            "credentialRef": {"name": CREDENTIALS},
            "refreshInterval": "1h",
            "secret": {"namePattern": "{name}-kubeconfig", "labels": {"fleet": "prod"}},
        },
        "discoveryInterval": "1m",
        "pruneAfterAbsentListings": 2,
    })
}

/// The set's status once `ok` holds for it (and it has seen its spec).
async fn wait_status(
    api: &Api<KubeconfigExportSet>,
    what: &str,
    within: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    wait_until(within, what, || async {
        let set = api.get("prod").await.ok()?;
        let current = set.status.as_ref()?.observed_generation == set.metadata.generation?;
        let status = serde_json::to_value(set.status.as_ref()?).ok()?;
        // What the set said last, for a failure to show.
        let mut seen = last.lock().unwrap();
        if *seen != status {
            eprintln!(
                "{what}: generation {:?}, status {status}",
                set.metadata.generation
            );
            *seen = status.clone();
        }
        (current && ok(&status)).then_some(status)
    })
    .await
}

fn discovered(status: &Value) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Discovered"))
        .cloned()
        .unwrap_or_default();
    (
        c["status"].as_str().unwrap_or_default().to_string(),
        c["reason"].as_str().unwrap_or_default().to_string(),
    )
}

/// The names of the fleet's Secrets (labelled by the template).
async fn secrets(env: &Env) -> BTreeSet<String> {
    env.secrets()
        .list(&ListParams::default().labels("fleet=prod"))
        .await
        .expect("list Secrets")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|n| format!("{n}-kubeconfig")).collect()
}

#[tokio::test]
async fn a_fleet_export_follows_the_world_and_keeps_its_secrets_through_arm_failures() {
    let clusters = [prod("p1"), prod("p2"), prod("p3")].join("\n");
    let env = Env::on_chart("kcxset", &world(&clusters, "")).await;
    let api: Api<KubeconfigExportSet> = Api::namespaced(env.client.clone(), &env.ns);
    let set: KubeconfigExportSet = serde_json::from_value(json!({
        "apiVersion": "kubeinvoke.io/v1alpha1",
        "kind": "KubeconfigExportSet",
        "metadata": {"name": "prod"},
        "spec": set_spec(),
    }))
    .unwrap();
    api.create(&PostParams::default(), &set).await.unwrap();

    // The three tagged clusters, none of the untagged ones of the world.
    let status = wait_status(&api, "the three prod clusters exported", INTERVAL, |s| {
        s["reason"] == "Exported" && s["clusters"] == 3 && s["ready"] == 3
    })
    .await;
    assert!(status["lastDiscoveryTime"].is_string(), "{status}");
    assert_eq!(secrets(&env).await, names(&["p1", "p2", "p3"]));
    let exports = Api::<KubeconfigExport>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default().labels("kubeinvoke.io/kubeconfig-export-set=prod"))
        .await
        .unwrap();
    assert_eq!(exports.items.len(), 3, "one export per cluster");

    // A cluster added to the world joins within one interval; one removed is counted absent.
    env.emulator
        .put_resource(
            "rg1",
            "managedClusters",
            "p4",
            &format!(
                "{{tags: {{env: prod}}, {}}}",
                kubeconfig_spec(Cluster::get())
            ),
        )
        .await;
    env.emulator
        .delete_resource("rg1", "managedClusters", "p1")
        .await;
    let status = wait_status(&api, "p4 exported, p1 counted absent", INTERVAL, |s| {
        s["ready"] == 4 && s["absentClusters"][0]["listings"] == 1
    })
    .await;
    assert!(
        status["absentClusters"][0]["resourceId"]
            .as_str()
            .unwrap()
            .ends_with("/p1"),
        "{status}"
    );
    let all = names(&["p1", "p2", "p3", "p4"]);
    assert_eq!(secrets(&env).await, all, "p1 is kept until absent twice");

    // ARM refuses the listing (the role assignment is gone), then fails with 500s, then lists
    // nothing: no export is dropped, and none of it counts as an absence.
    env.emulator
        .put_faults("{aks.list: {error403Rate: 1.0}}")
        .await;
    let status = wait_status(&api, "the 403 seen", INTERVAL, |s| {
        discovered(s) == ("False".into(), "Forbidden".into())
    })
    .await;
    assert_eq!(status["reason"], "Forbidden", "{status}");
    assert_eq!(secrets(&env).await, all);
    env.emulator
        .put_faults("{aks.list: {error500Rate: 1.0}}")
        .await;
    wait_status(&api, "the 500s seen", INTERVAL, |s| {
        let (state, reason) = discovered(s);
        state == "False" && reason != "Forbidden"
    })
    .await;
    assert_eq!(secrets(&env).await, all);
    env.emulator
        .put_faults("{aks.list: {emptyListRate: 1.0}}")
        .await;
    let status = wait_status(&api, "an empty listing taken", INTERVAL, |s| {
        discovered(s).0 == "True"
    })
    .await;
    assert_eq!(status["clusters"], 4, "{status}");
    assert_eq!(status["absentClusters"][0]["listings"], 1, "{status}");
    assert_eq!(secrets(&env).await, all, "an empty listing removes nothing");
    wait_until(Duration::from_secs(30), "an EmptyListing Event", || async {
        env.events()
            .await
            .iter()
            .any(|e| e.reason.as_deref() == Some("EmptyListing"))
            .then_some(())
    })
    .await;

    // ARM answers again: the second successful listing without p1 lets it go, with its Secret.
    env.emulator.put_faults("{}").await;
    wait_status(&api, "p1 let go", INTERVAL * 2, |s| {
        s["clusters"] == 3
            && s["absentClusters"].as_array().is_some_and(Vec::is_empty)
            && s["reason"] == "Exported"
    })
    .await;
    let after = names(&["p2", "p3", "p4"]);
    wait_until(Duration::from_secs(60), "p1's Secret collected", || async {
        (secrets(&env).await == after).then_some(())
    })
    .await;
}

/// AKS Arc clusters: only connected clusters of kind `ProvisionedCluster` are selected (a plain
/// Arc-enabled cluster with the same tag is not); two clusters whose Secret names come out the
/// same get one Secret and a `SecretConflict`, until the pattern tells them apart.
#[tokio::test]
async fn a_fleet_of_aks_arc_clusters_leaves_out_plain_connected_clusters_and_name_clashes() {
    let kubeconfig = kubeconfig_spec(Cluster::get());
    let connected = format!(
        "          - {{name: arc2, tags: {{env: edge}}, lroPolls: 1, {kubeconfig}}}\n          - {{name: arc-plain, plain: true, tags: {{env: edge}}, {kubeconfig}}}"
    );
    let env = Env::start("kcxset-arc", &world("", &connected), &[]).await;
    env.emulator
        .put_resource(
            "rg2",
            "connectedClusters",
            "arc2",
            &format!("{{tags: {{env: edge}}, lroPolls: 1, {kubeconfig}}}"),
        )
        .await;
    let api: Api<KubeconfigExportSet> = Api::namespaced(env.client.clone(), &env.ns);
    let set: KubeconfigExportSet = serde_json::from_value(json!({
        "apiVersion": "kubeinvoke.io/v1alpha1",
        "kind": "KubeconfigExportSet",
        "metadata": {"name": "prod"},
        "spec": {
            "selector": {
                "resourceType": "ConnectedClusters",
                "subscriptions": [SUBSCRIPTION],
                "matchTags": {"env": "edge"},
            },
            "template": {
                "credentialRef": {"name": CREDENTIALS},
                "secret": {"labels": {"fleet": "prod"}},
            },
        },
    }))
    .unwrap();
    api.create(&PostParams::default(), &set).await.unwrap();

    let status = wait_status(&api, "one export and one clash", INTERVAL, |s| {
        s["reason"] == "ExportsFailed" && s["ready"] == 1
    })
    .await;
    assert_eq!(status["clusters"], 1, "{status}");
    let failed = &status["failedClusters"];
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{status}");
    assert_eq!(failed[0]["reason"], "SecretConflict", "{status}");
    assert!(
        failed[0]["resourceId"]
            .as_str()
            .unwrap()
            .contains("/resourceGroups/rg2/"),
        "the first by resource ID (rg1) has the name: {status}"
    );
    assert_eq!(secrets(&env).await, names(&["arc2"]));

    api.patch(
        "prod",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            json!({"spec": {"template": {"secret": {"namePattern": "{resourceGroup}-{name}"}}}}),
        ),
    )
    .await
    .unwrap();
    wait_status(&api, "both exported", INTERVAL, |s| {
        s["reason"] == "Exported" && s["ready"] == 2 && s["clusters"] == 2
    })
    .await;
    let both: BTreeSet<String> = ["rg1-arc2", "rg2-arc2"].map(String::from).into();
    wait_until(
        Duration::from_secs(60),
        "the renamed Secrets only",
        || async { (secrets(&env).await == both).then_some(()) },
    )
    .await;
    let log = env.emulator.requests().await.to_string();
    assert!(
        !log.contains("arc-plain/providers/Microsoft.HybridContainerService"),
        "no kubeconfig was asked of the plain connected cluster"
    );
}
