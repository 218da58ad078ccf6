//! Fleet runs end to end: a RemoteCommandSet over twenty emulated AKS clusters, served by the
//! operator as the chart installs it. What ARM saw is read from the emulator: how many commands ran
//! at once, how many times each cluster was asked, and which scopes were listed.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kubeinvoke::api::{RemoteCommand, RemoteCommandSet};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use support::emulator::{
    Emulator, SUBSCRIPTION, TENANT, aks_id, managed_identity_env, with_managed_identity, world,
};
use support::release::Installed;
use support::{Cluster, install_crds, namespace, rcmd, wait_until};

/// One release's pods at a time on the 2-core node.
static NODE: Mutex<()> = Mutex::const_new(());

const FLEET: usize = 20;

fn cluster(i: usize) -> String {
    format!("aks-fleet-{i:02}")
}

/// Twenty clusters whose commands take `seconds`; `disabled` of them refuse run command.
fn fleet_world(seconds: f64, disabled: &[usize]) -> String {
    let lines: Vec<String> = (0..FLEET)
        .map(|i| {
            let extra = if disabled.contains(&i) {
                ", disableRunCommand: true"
            } else {
                ""
            };
            format!(
                "          - {{name: {}, commandDuration: {seconds}{extra}}}",
                cluster(i)
            )
        })
        .collect();
    world(&lines.join("\n"), "")
}

fn set(name: &str, command: &str, concurrency: i64, max_errors: i64) -> RemoteCommandSet {
    let ids: Vec<String> = (0..FLEET).map(|i| aks_id(&cluster(i))).collect();
    serde_json::from_value(json!({
        "apiVersion": "kubeinvoke.io/v1alpha1",
        "kind": "RemoteCommandSet",
        "metadata": {"name": name},
        "spec": {
            "template": {"command": command, "timeoutSeconds": 300},
            "targets": {"resourceIds": ids},
            "maxConcurrency": concurrency,
            "maxErrors": max_errors,
        },
    }))
    .unwrap()
}

async fn create(client: &Client, ns: &str, set: &RemoteCommandSet) -> Api<RemoteCommandSet> {
    let api = Api::<RemoteCommandSet>::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), set)
        .await
        .expect("create the RemoteCommandSet");
    api
}

/// Waits until the set's reason is `reason` (and its status has seen its spec).
async fn wait_reason(
    api: &Api<RemoteCommandSet>,
    name: &str,
    reason: &str,
    within: Duration,
) -> Value {
    wait_until(
        within,
        &format!("RemoteCommandSet {name} to reach {reason}"),
        || async move {
            let set = api.get(name).await.ok()?;
            let status = serde_json::to_value(set.status.as_ref()?).ok()?;
            let current = set.status.as_ref()?.observed_generation
                == set.metadata.generation.unwrap_or_default();
            (current && status["reason"] == reason).then_some(status)
        },
    )
    .await
}

/// Twenty clusters, at most four commands at once; every cluster asked exactly once; a change of
/// rate control after the end starts nothing.
#[tokio::test]
async fn a_fleet_run_keeps_to_max_concurrency_and_runs_each_target_once() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("fleet-conc").await;
    let emulator = Emulator::start(&fleet_world(2.0, &[]), &[]);
    let _op = Installed::install(&admin, &emulator, &ns).await;
    let command = format!("echo patched {ns}");
    let api = create(&admin, &ns, &set("patch", &command, 4, 0)).await;

    let status = wait_reason(&api, "patch", "Completed", Duration::from_secs(240)).await;
    assert_eq!(status["targetCount"], FLEET);
    assert_eq!(status["succeeded"], FLEET);
    assert_eq!(
        (
            status["failed"].as_i64(),
            status["active"].as_i64(),
            status["notStarted"].as_i64()
        ),
        (Some(0), Some(0), Some(0))
    );
    assert!(status["completionTime"].is_string());
    let seen_peak = emulator.commands_running_peak().await;
    assert!(
        seen_peak <= 4,
        "ARM saw {seen_peak} commands running at once; maxConcurrency is 4"
    );
    assert!(
        seen_peak >= 2,
        "the run used its concurrency (peak {seen_peak})"
    );
    let counts = emulator.run_commands_per_cluster().await;
    assert_eq!(counts.len(), FLEET, "{counts:?}");
    assert!(
        counts.values().all(|n| *n == 1),
        "each cluster asked once: {counts:?}"
    );
    let children = Api::<RemoteCommand>::namespaced(admin.clone(), &ns)
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(children.items.len(), FLEET);

    // Rate control is not a new run: raising maxConcurrency after the end sends nothing.
    api.patch(
        "patch",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxConcurrency": 10}})),
    )
    .await
    .unwrap();
    wait_reason(&api, "patch", "Completed", Duration::from_secs(60)).await;
    assert_eq!(emulator.dispatches(&command).await, FLEET as u64);
}

/// Two clusters that refuse run command come first and `maxErrors` is 1: after the second failure
/// nothing new starts and the other eighteen are `notStarted`; raising `maxErrors` resumes the run.
#[tokio::test]
async fn past_max_errors_launching_stops_and_the_rest_are_not_started() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("fleet-err").await;
    let emulator = Emulator::start(&fleet_world(0.0, &[0, 1]), &[]);
    let _op = Installed::install(&admin, &emulator, &ns).await;
    let command = format!("echo careful {ns}");
    let api = create(&admin, &ns, &set("careful", &command, 1, 1)).await;

    let status = wait_reason(
        &api,
        "careful",
        "MaxErrorsExceeded",
        Duration::from_secs(180),
    )
    .await;
    assert_eq!(
        (
            status["failed"].as_i64(),
            status["succeeded"].as_i64(),
            status["notStarted"].as_i64(),
            status["active"].as_i64()
        ),
        (Some(2), Some(0), Some(18), Some(0)),
        "{status}"
    );
    let failed = status["failedTargets"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    assert!(
        failed.iter().all(|f| f["reason"] == "RunCommandDisabled"),
        "{failed:?}"
    );
    assert_eq!(
        emulator.dispatches(&command).await,
        0,
        "nothing past the failures was sent"
    );

    api.patch(
        "careful",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxErrors": 5, "maxConcurrency": 6}})),
    )
    .await
    .unwrap();
    let status = wait_reason(&api, "careful", "TargetsFailed", Duration::from_secs(180)).await;
    assert_eq!(
        (
            status["failed"].as_i64(),
            status["succeeded"].as_i64(),
            status["notStarted"].as_i64()
        ),
        (Some(2), Some(18), Some(0)),
        "{status}"
    );
    assert_eq!(emulator.dispatches(&command).await, 18);
}

/// The leader is killed while the fleet runs: the standby goes on from the set's status and the
/// children; every cluster is asked exactly once and every target ends `Succeeded`.
#[tokio::test]
async fn an_operator_restart_mid_run_loses_nothing_and_repeats_nothing() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("fleet-restart").await;
    let emulator = Emulator::start(&fleet_world(3.0, &[]), &[]);
    let op = Installed::install(&admin, &emulator, &ns).await;
    let command = format!("echo survived {ns}");
    let api = create(&admin, &ns, &set("survive", &command, 5, 0)).await;

    wait_until(
        Duration::from_secs(120),
        "a fleet run under way",
        || async {
            let s = api.get("survive").await.ok()?.status?;
            (s.succeeded >= 3 && s.active > 0).then_some(())
        },
    )
    .await;
    let leader = op.leader().await;
    Api::<Pod>::namespaced(admin.clone(), &op.release.namespace)
        .delete(
            &leader,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("kill the leader pod");

    let status = wait_reason(&api, "survive", "Completed", Duration::from_secs(300)).await;
    assert_eq!(status["succeeded"], FLEET);
    let counts = emulator.run_commands_per_cluster().await;
    assert_eq!(counts.len(), FLEET, "{counts:?}");
    assert!(
        counts.values().all(|n| *n == 1),
        "nothing sent twice: {counts:?}"
    );
    assert!(emulator.commands_running_peak().await <= 5);
}

/// A selector over a subscription lists every cluster page by page (five to a page) and runs on
/// the twelve tagged `env: prod` only; `maxConcurrency: 25%` is three at once.
#[tokio::test]
async fn a_selector_runs_on_the_tagged_clusters_it_lists_page_by_page() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("fleet-sel").await;
    let sets = "        managedClusterSets:\n          - {count: 12, namePattern: \"aks-prod-{i:02}\", tags: {env: prod}, commandDuration: 1}\n          - {count: 10, namePattern: \"aks-dev-{i:02}\", tags: {env: dev}}";
    let world = format!("{}listPaging: {{pageSize: 5}}\n", world(sets, ""));
    let emulator = Emulator::start(&world, &[]);
    let _op = Installed::install(&admin, &emulator, &ns).await;
    let command = format!("echo selected {ns}");
    let set: RemoteCommandSet = serde_json::from_value(json!({
        "apiVersion": "kubeinvoke.io/v1alpha1",
        "kind": "RemoteCommandSet",
        "metadata": {"name": "prod"},
        "spec": {
            "template": {"command": command, "timeoutSeconds": 300},
            "targets": {"selector": {"subscriptions": [SUBSCRIPTION], "matchTags": {"ENV": "prod"}}},
            "maxConcurrency": "25%",
        },
    }))
    .unwrap();
    let api = create(&admin, &ns, &set).await;

    let status = wait_reason(&api, "prod", "Completed", Duration::from_secs(240)).await;
    assert_eq!(status["targetCount"], 12, "{status}");
    let targets: Vec<&str> = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        targets.iter().all(|t| t.contains("/aks-prod-")),
        "{targets:?}"
    );
    let counts = emulator.run_commands_per_cluster().await;
    assert_eq!(counts.len(), 12, "{counts:?}");
    assert!(
        counts.keys().all(|c| c.starts_with("aks-prod-")) && counts.values().all(|n| *n == 1),
        "{counts:?}"
    );
    assert!(emulator.commands_running_peak().await <= 3);
    let pages = emulator.counters().await["requests"]["aks.list"]
        .as_u64()
        .unwrap_or(0);
    assert!(pages >= 5, "the listing read every page ({pages} requests)");
}

/// A subscription the tenant's grant does not name, with a cluster the selector would match.
const OTHER_SUBSCRIPTION: &str = "99999999-0000-4000-8000-000000000099";

/// A namespace may use the operator's identity in resource group rg1 only (`runCommands` too). A
/// set whose selector names another subscription, or rg1's whole subscription, is `Forbidden`
/// before any request: ARM never sees either listed, and the other subscription's cluster runs
/// nothing. A set of the same namespace within the grant lists rg1 and runs there.
#[tokio::test]
async fn a_selector_cannot_reach_a_scope_the_grant_excludes() {
    let _turn = NODE.lock().await;
    let admin = Cluster::get().client().await;
    install_crds(&admin).await;
    // No credential Secret: the namespace acts with the operator's identity, within its grant.
    let ns = namespace(&admin, "fleet-grant").await;
    let sets = "        managedClusterSets:\n          - {count: 3, namePattern: \"aks-granted-{i}\", tags: {env: prod}}";
    let other = format!(
        "  - id: \"{OTHER_SUBSCRIPTION}\"\n    tenantId: \"{TENANT}\"\n    resourceGroups:\n      - name: rg-other\n        managedClusters:\n          - {{name: aks-other, tags: {{env: prod}}}}\n"
    );
    let emulator = Emulator::start(
        &with_managed_identity(&format!("{}{other}", world(sets, ""))),
        &[],
    );
    let grants = json!([{
        "namespace": ns,
        "scopes": [format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1")],
        "runCommands": true,
    }]);
    let values = json!({
        "operatorIdentity": "managed",
        "operatorIdentityGrants": grants,
        "extraEnv": managed_identity_env(&emulator),
    });
    let op = Installed::install_with(&admin, &emulator, &ns, &values.to_string()).await;

    let selected = |name: &str, selector: Value| -> RemoteCommandSet {
        serde_json::from_value(json!({
            "apiVersion": "kubeinvoke.io/v1alpha1",
            "kind": "RemoteCommandSet",
            "metadata": {"name": name},
            "spec": {
                "template": {"command": format!("echo {name} {ns}"), "timeoutSeconds": 120},
                "targets": {"selector": selector},
            },
        }))
        .unwrap()
    };
    let api = Api::<RemoteCommandSet>::namespaced(admin.clone(), &ns);
    for (name, selector) in [
        (
            "other-subscription",
            json!({"subscriptions": [OTHER_SUBSCRIPTION], "matchTags": {"env": "prod"}}),
        ),
        (
            "whole-subscription",
            json!({"subscriptions": [SUBSCRIPTION], "matchTags": {"env": "prod"}}),
        ),
    ] {
        create(&admin, &ns, &selected(name, selector)).await;
        let status = wait_reason(&api, name, "Forbidden", Duration::from_secs(60)).await;
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("not granted"),
            "{name}: {status}\n{}",
            op.logs()
        );
        assert_eq!(status["targetCount"], 0, "{name}: {status}");
    }

    // Within the grant the same identity lists rg1 and runs on what it selects.
    create(
        &admin,
        &ns,
        &selected(
            "granted",
            json!({"subscriptions": [SUBSCRIPTION], "resourceGroups": ["rg1"], "matchTags": {"env": "prod"}}),
        ),
    )
    .await;
    let status = wait_reason(&api, "granted", "Completed", Duration::from_secs(180)).await;
    assert_eq!(status["targetCount"], 3, "{status}");

    let listed: Vec<String> = emulator
        .requests()
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["operation"] == "aks.list")
        .filter_map(|e| e["path"].as_str().map(str::to_ascii_lowercase))
        .collect();
    let rg1 = format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/rg1/");
    assert!(
        listed.iter().any(|p| p.starts_with(&rg1)),
        "the granted set listed rg1: {listed:?}"
    );
    assert!(
        listed.iter().all(|p| p.starts_with(&rg1)),
        "ARM was asked to list outside the grant: {listed:?}"
    );
    let requests = emulator.requests().await.to_string().to_ascii_lowercase();
    assert!(
        !requests.contains(OTHER_SUBSCRIPTION),
        "ARM saw a request for the subscription outside the grant"
    );
    assert_eq!(
        emulator
            .dispatches(&format!("echo other-subscription {ns}"))
            .await,
        0
    );
}

/// A target's RemoteCommand deleted while the run goes on is never launched again (it counts as
/// failed, `ResultUnavailable`); `ttlSecondsAfterFinished` deletes the run's commands only once
/// the whole run completed, and the set keeps its counts; re-applying the same spec (as GitOps
/// does, with server-side apply) runs nothing.
#[tokio::test]
async fn a_deleted_or_expired_child_is_never_launched_again() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("fleet-gone").await;
    let emulator = Emulator::start(&fleet_world(2.0, &[]), &[]);
    let _op = Installed::install(&admin, &emulator, &ns).await;
    let command = format!("echo once {ns}");
    let mut spec = set("once", &command, 5, 1);
    spec.spec.template.ttl_seconds_after_finished = Some(0);
    let api = create(&admin, &ns, &spec).await;
    let commands = Api::<RemoteCommand>::namespaced(admin.clone(), &ns);

    // The first child to succeed is deleted by hand while the others still run.
    let first = wait_until(
        Duration::from_secs(120),
        "a child succeeded while the run goes on",
        || async {
            let list = commands.list(&Default::default()).await.ok()?;
            let done = list.items.iter().find(|rc| {
                rc.status.as_ref().and_then(|s| s.phase) == Some(kubeinvoke::api::Phase::Succeeded)
            })?;
            done.metadata.name.clone()
        },
    )
    .await;
    commands
        .delete(&first, &DeleteParams::default())
        .await
        .unwrap();

    let status = wait_reason(&api, "once", "TargetsFailed", Duration::from_secs(240)).await;
    assert_eq!(
        (status["succeeded"].as_i64(), status["failed"].as_i64()),
        (Some(FLEET as i64 - 1), Some(1)),
        "{status}"
    );
    assert_eq!(status["failedTargets"][0]["reason"], "ResultUnavailable");
    assert_eq!(status["failedTargets"][0]["name"], first.as_str());
    assert_eq!(status["launched"], FLEET);

    // The TTL of 0 deletes every command of the completed run; none comes back.
    wait_until(
        Duration::from_secs(60),
        "the run's commands deleted",
        || async {
            commands
                .list(&Default::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        },
    )
    .await;
    let manifest = serde_json::to_value(&spec).unwrap();
    api.patch(
        "once",
        &PatchParams::apply("flux").force(),
        &Patch::Apply(&manifest),
    )
    .await
    .unwrap();
    // A change of rate control makes the set look again at a run whose commands are gone.
    api.patch(
        "once",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxConcurrency": 10}})),
    )
    .await
    .unwrap();
    let after = wait_reason(&api, "once", "TargetsFailed", Duration::from_secs(60)).await;
    assert_eq!(after["succeeded"], status["succeeded"], "{after}");
    assert_eq!(after["failed"], status["failed"], "{after}");
    assert!(
        commands
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing relaunched"
    );
    let counts = emulator.run_commands_per_cluster().await;
    assert_eq!(counts.len(), FLEET, "{counts:?}");
    assert!(
        counts.values().all(|n| *n == 1),
        "each cluster asked once: {counts:?}"
    );
    assert_eq!(emulator.dispatches(&command).await, FLEET as u64);
}
