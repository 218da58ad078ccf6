//! Tenants are adversaries, against the operator as users install it (the image on the node, the
//! Helm chart, its pods running with their own projected ServiceAccount token): each test is one
//! attack, named for it, and fails if the defence is removed.
//!
//! The scenarios take turns ([`NODE`]): a 2-core node runs one release's pods at a time comfortably.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Mutex;

use support::emulator::{Emulator, TENANT, federated, wait_counters, world};
use support::helm::{Chart, Release};
use support::rcmd::{aks, create, outcome, output, wait_finished};
use support::release::{Installed, restarts, signal};
use support::{Cluster, install_crds, namespace, rcmd, scratch_dir, wait_until};

static NODE: Mutex<()> = Mutex::const_new(());

const TEAM_A: &str = "a1a1a1a1-0000-0000-0000-00000000000a";
const TEAM_B: &str = "b2b2b2b2-0000-0000-0000-00000000000b";

/// A world where `TEAM_A` trusts `<ns_a>:deployer` and `TEAM_B` trusts `<ns_b>:deployer`.
fn federated_world(ns_a: &str, ns_b: &str) -> String {
    federated(
        &world("", ""),
        &[(TEAM_A, ns_a, "deployer"), (TEAM_B, ns_b, "deployer")],
    )
}

/// Waits for run `name` to fail with `reason`, its message naming `why`.
async fn refused(client: &Client, ns: &str, name: &str, reason: &str, why: &str) {
    let rc = wait_finished(client, ns, name).await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), reason.into()),
        "{name}: {:?}",
        rc.status
    );
    let message = rc.status.and_then(|s| s.message).unwrap_or_default();
    assert!(message.contains(why), "{name}: {message}");
}

/// A namespace with a ServiceAccount `deployer` and a credential Secret naming `client_id` with it.
async fn tenant(client: &Client, prefix: &str, client_id: &str) -> String {
    let ns = namespace(client, prefix).await;
    // Its owner lends it to the client id (Azure Workload Identity's annotation).
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {
        "name": "deployer",
        "annotations": {"azure.workload.identity/client-id": client_id},
    }}))
    .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "kubeinvoke-credentials"},
        "stringData": {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": client_id, "AZURE_SERVICE_ACCOUNT": "deployer"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create credential Secret");
    ns
}

/// Emulator log entries: (operation, client id, status).
async fn log(emulator: &Emulator) -> Vec<(String, String, u64)> {
    emulator
        .requests()
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap_or_default().to_string(),
                e["clientId"]
                    .as_str()
                    .or(e["client_id"].as_str())
                    .unwrap_or_default()
                    .to_string(),
                e["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// A credential Secret names the operator's own ServiceAccount for workload identity — in an install
/// that watches the operator's own namespace (the chart refuses that; a hand-made install may not),
/// with that ServiceAccount even annotated for the client id and Entra trusting its tokens. The
/// operator mints nothing for it: the run is `Forbidden` and nothing reaches ARM.
#[tokio::test]
async fn a_credential_secret_cannot_borrow_the_operators_own_service_account() {
    const BORROWED: &str = "0be0be0b-0000-0000-0000-0000000000be";
    let _turn = NODE.lock().await;
    let (admin, base) = rcmd::setup("hostile-own").await;
    let release_ns = format!("{base}-op");
    let own_sa = Chart::load().service_account_name(&Release {
        name: release_ns.clone(),
        namespace: release_ns.clone(),
    });
    // Entra trusts the operator's ServiceAccount for BORROWED: without the defence, the borrowed
    // token would be exchanged and the command would run.
    let emulator = Emulator::start(
        &federated(&world("", ""), &[(BORROWED, &release_ns, &own_sa)]),
        &[],
    );
    let op = Installed::install_watching_itself(&admin, &emulator, &base).await;
    Api::<ServiceAccount>::namespaced(admin.clone(), &release_ns)
        .patch(
            &own_sa,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"azure.workload.identity/client-id": BORROWED}}}),
            ),
        )
        .await
        .expect("annotate the operator's ServiceAccount");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "borrow"},
        "stringData": {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": BORROWED, "AZURE_SERVICE_ACCOUNT": own_sa},
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &release_ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let mut spec = rcmd::aks("aks1", "echo borrowed-the-operator");
    spec["credentialRef"] = json!({"name": "borrow"});
    rcmd::create(&admin, &release_ns, "borrow", spec).await;
    let rc = rcmd::wait_finished(&admin, &release_ns, "borrow").await;
    assert_eq!(
        rcmd::outcome(&rc),
        ("Failed".into(), "Forbidden".into()),
        "{}\n{}",
        rcmd::message(&rc),
        op.logs()
    );
    assert!(
        rcmd::message(&rc).contains("operator's own"),
        "{}",
        rcmd::message(&rc)
    );
    assert_eq!(emulator.dispatches("echo borrowed-the-operator").await, 0);
}

/// Split brain in an ACI shell session: the leader is frozen after the exec session connected and
/// before the shell came up; the standby ends the run `SessionInterrupted`; the shell's "ready"
/// waits in the frozen leader's socket. Woken, the old leader must not type the command — it no
/// longer holds the Lease — so the command never runs, though nothing stopped it on the way.
#[tokio::test]
async fn a_frozen_leader_never_types_an_aci_command_after_the_standby_took_over() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("hostile-type").await;
    let slow_shell = world("", "").replace(
        r#"logs: ["ready"]}]"#,
        r#"logs: ["ready"], execStartSeconds: 3}]"#,
    );
    let emulator = Emulator::start(&slow_shell, &[]);
    let (op, pod, pid) = Installed::install_for_split_brain(&admin, &emulator, &ns).await;
    let leader = pod.name_any();
    let restarts_before = restarts(&pod);

    // The command leaves a trace on the emulator's host if it ever runs.
    let trace = scratch_dir("typed").join("ran");
    let mut spec = rcmd::aci_shell("cg1", &format!("touch {}", trace.display()));
    spec["timeoutSeconds"] = json!(120);
    rcmd::create(&admin, &ns, "typed", spec).await;
    // The session connected (password accepted): the shell starts 3 s from now.
    wait_counters(&emulator, "the exec session to connect", |c| {
        c["execSessions"]["/bin/sh"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    signal(&pid, "STOP");
    let declared = rcmd::wait_for(&admin, &ns, "typed", "the standby's verdict", |rc| {
        rcmd::outcome(rc) == ("Failed".into(), "SessionInterrupted".into())
    })
    .await;
    signal(&pid, "CONT");
    // The woken leader finds its Lease gone and stops: its container restarts.
    wait_until(
        Duration::from_secs(90),
        "the old leader's container to restart",
        || async {
            let pod = op.pods_api().get(&leader).await.ok()?;
            (restarts(&pod) > restarts_before).then_some(())
        },
    )
    .await;
    assert!(
        !trace.exists(),
        "the frozen leader typed the command after losing the Lease\n{}",
        op.logs()
    );
    let after = rcmd::get(&admin, &ns, "typed").await;
    assert_eq!(
        rcmd::outcome(&after),
        rcmd::outcome(&declared),
        "{}",
        rcmd::message(&after)
    );
    assert_eq!(after.name_any(), "typed");
}

/// Mallory names team A's client id with her own ServiceAccount (and a principal's that is not
/// federated at all): Entra refuses every exchange, nothing runs for her, and each team acts as
/// itself — one chart install serving the three namespaces from its list.
#[tokio::test]
async fn a_namespace_cannot_act_with_another_namespaces_federated_identity() {
    let _turn = NODE.lock().await;
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let ns_a = tenant(&client, "team-a", TEAM_A).await;
    let ns_b = tenant(&client, "team-b", TEAM_B).await;
    // mallory has a ServiceAccount of the same name and names team A's client id.
    let mallory = tenant(&client, "mallory", TEAM_A).await;
    let emulator = Emulator::start(&federated_world(&ns_a, &ns_b), &[]);
    let _op = Installed::install_with(
        &client,
        &emulator,
        &ns_a,
        &format!("watchNamespaces: [\"{ns_b}\", \"{mallory}\"]\n"),
    )
    .await;

    for ns in [&ns_a, &ns_b] {
        create(
            &client,
            ns,
            "hello",
            aks("aks1", &format!("echo from {ns}")),
        )
        .await;
    }
    let mut spec = aks("aks1", "echo mallory-was-here");
    spec["timeoutSeconds"] = json!(5);
    create(&client, &mallory, "steal", spec).await;
    // ...and, with its own ServiceAccount, the client id of a principal that is not federated at all
    // (here the emulator's secret-based principal, like an operator's own identity).
    let borrowed: Secret = serde_json::from_value(json!({
        "metadata": {"name": "borrowed"},
        "stringData": {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": support::emulator::CLIENT_ID, "AZURE_SERVICE_ACCOUNT": "deployer"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &mallory)
        .create(&PostParams::default(), &borrowed)
        .await
        .unwrap();
    let mut spec = aks("aks1", "echo mallory-borrowed");
    spec["credentialRef"] = json!({"name": "borrowed"});
    spec["timeoutSeconds"] = json!(5);
    create(&client, &mallory, "borrow", spec).await;

    for ns in [&ns_a, &ns_b] {
        let rc = wait_finished(&client, ns, "hello").await;
        assert_eq!(
            outcome(&rc),
            ("Succeeded".into(), "Completed".into()),
            "{ns}: {:?}",
            rc.status
        );
        assert_eq!(output(&client, ns, &rc).await, format!("from {ns}\n"));
    }
    let rc = wait_finished(&client, &mallory, "steal").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "Forbidden".into()),
        "mallory's run must be refused: {:?}",
        rc.status
    );
    assert_eq!(emulator.dispatches("echo mallory-was-here").await, 0);
    // Mallory's ServiceAccount was lent to team A's client id only: no token is minted for another.
    refused(
        &client,
        &mallory,
        "borrow",
        "CredentialNotFound",
        "has not opted in",
    )
    .await;
    assert_eq!(emulator.dispatches("echo mallory-borrowed").await, 0);

    // Each team was its own principal at ARM; Entra refused every exchange mallory caused, and ARM
    // saw exactly the two teams' runs for team A's client id.
    let entries = log(&emulator).await;
    let arm_by = |id: &str| {
        entries
            .iter()
            .filter(|(op, c, _)| !op.starts_with("entra.") && c == id)
            .count()
    };
    assert!(arm_by(TEAM_A) > 0 && arm_by(TEAM_B) > 0, "{entries:?}");
    let tokens_for_a: Vec<u64> = entries
        .iter()
        .filter(|(op, c, _)| op == "entra.token" && c == TEAM_A)
        .map(|(_, _, status)| *status)
        .collect();
    assert!(
        tokens_for_a.contains(&200),
        "team A's own exchange failed: {tokens_for_a:?}"
    );
    assert!(
        tokens_for_a.iter().any(|s| *s != 200),
        "mallory's exchange was not refused: {tokens_for_a:?}"
    );
}

/// The operator's own identity is granted per namespace and scope: outside the scope, and for
/// admin kubeconfigs or its AAD token without a grant, the resource is refused before any request
/// reaches Entra or ARM.
#[tokio::test]
async fn the_operator_identity_cannot_be_used_outside_its_grant() {
    let _turn = NODE.lock().await;
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "granted").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let grants = format!(
        r#"[{{"namespace": "{ns}", "scopes": ["/subscriptions/{}/resourceGroups/rg2"]}}, {{"namespace": "other", "adminKubeconfig": true}}]"#,
        support::emulator::SUBSCRIPTION
    );
    let _op = Installed::install_with(
        &client,
        &emulator,
        &ns,
        &format!("operatorIdentity: managed\noperatorIdentityGrants: {grants}\n"),
    )
    .await;
    create(
        &client,
        &ns,
        "outside",
        aks("aks1", "echo outside-the-grant"),
    )
    .await;
    refused(&client, &ns, "outside", "Forbidden", "not granted").await;

    let export = |name: &str, role: &str, authentication: &str| {
        let mut spec = support::kcx::spec(
            json!({"aks": {"resourceId": format!("/subscriptions/{}/resourceGroups/rg2/providers/Microsoft.ContainerService/managedClusters/aks9", support::emulator::SUBSCRIPTION), "role": role}}),
            &format!("{name}-kubeconfig"),
            "Kubeconfig",
        );
        spec["authentication"] = json!(authentication);
        json!({"apiVersion": "kubeinvoke.io/v1alpha1", "kind": "KubeconfigExport",
               "metadata": {"name": name, "namespace": ns}, "spec": spec})
    };
    let exports = Api::<kubeinvoke::api::KubeconfigExport>::namespaced(client.clone(), &ns);
    for (name, role, authentication) in [
        ("admin", "Admin", "Passthrough"),
        ("token", "User", "Token"),
    ] {
        let k: kubeinvoke::api::KubeconfigExport =
            serde_json::from_value(export(name, role, authentication)).unwrap();
        exports.create(&PostParams::default(), &k).await.unwrap();
    }
    for name in ["admin", "token"] {
        let exports = exports.clone();
        support::wait_until(
            std::time::Duration::from_secs(30),
            &format!("export {name} to be Forbidden"),
            || {
                let exports = exports.clone();
                async move {
                    let k = exports.get(name).await.ok()?;
                    (k.status?.reason.as_deref() == Some("Forbidden")).then_some(())
                }
            },
        )
        .await;
    }
    // Nothing reached Entra ID or ARM.
    let entries = log(&emulator).await;
    assert!(entries.is_empty(), "requests were made: {entries:?}");
}

/// Running commands with the operator's identity is a grant of its own: a command runs with what
/// the identity's AKS token can do on the cluster, whatever the scopes. A namespace trusted with the
/// identity for kubeconfig exports (`--global-credential-namespaces`) cannot run one with it.
#[tokio::test]
async fn a_namespace_trusted_for_exports_cannot_run_commands_with_the_operator_identity() {
    let _turn = NODE.lock().await;
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "exports-only").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let _op = Installed::install_with(
        &client,
        &emulator,
        &ns,
        &format!("operatorIdentity: managed\nglobalCredentialNamespaces: \"{ns}\"\n"),
    )
    .await;
    create(
        &client,
        &ns,
        "cmd",
        aks("aks1", "echo with-the-operator-identity"),
    )
    .await;
    refused(&client, &ns, "cmd", "Forbidden", "runCommands").await;
    let entries = log(&emulator).await;
    assert!(entries.is_empty(), "requests were made: {entries:?}");
}

/// The cluster facts read before a dispatch are cached per principal: an identity that may run
/// commands but not read the cluster does not ride on the read another identity made a moment ago
/// (it is refused, as `az aks command invoke`, which reads the cluster first, is).
#[tokio::test]
async fn an_identity_cannot_ride_on_a_cluster_read_another_identity_made() {
    let _turn = NODE.lock().await;
    const RUNNER: &str = "55555555-5555-5555-5555-555555555555";
    let (client, ns) = support::rcmd::setup("cache-per-principal").await;
    let runner = format!(
        "  - {{tenantId: \"{TENANT}\", clientId: \"{RUNNER}\", clientSecret: \"runner-secret\", allowedActions: \
         [\"Microsoft.ContainerService/managedClusters/runcommand/action\", \"Microsoft.ContainerService/managedClusters/commandResults/read\"]}}\n"
    );
    let w = world("", "").replacen("principals:\n", &format!("principals:\n{runner}"), 1);
    let emulator = Emulator::start(&w, &[]);
    let _op = Installed::install(&client, &emulator, &ns).await;
    create(&client, &ns, "first", aks("aks1", "echo first")).await;
    let rc = wait_finished(&client, &ns, "first").await;
    assert_eq!(outcome(&rc), ("Succeeded".into(), "Completed".into()));

    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "runner"},
        "stringData": {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": RUNNER, "AZURE_CLIENT_SECRET": "runner-secret"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let mut spec = aks("aks1", "echo rode-along");
    spec["credentialRef"] = json!({"name": "runner"});
    spec["timeoutSeconds"] = json!(20);
    create(&client, &ns, "second", spec).await;
    refused(&client, &ns, "second", "Forbidden", "managedClusters/read").await;
    assert_eq!(emulator.dispatches("echo rode-along").await, 0);
}

/// Who ran what, where: the API server's audit log names the user who created a RemoteCommand and
/// its uid; the operator's audit line ties that uid to the target and the correlation id; ARM saw
/// the command under that correlation id. Three logs, one join.
#[tokio::test]
async fn a_user_cannot_run_a_command_that_the_audit_trail_does_not_tie_to_them() {
    let _turn = NODE.lock().await;
    let (client, ns) = support::rcmd::setup("audit-join").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let operator = Installed::install(&client, &emulator, &ns).await;
    let manifest = json!({"apiVersion": "kubeinvoke.io/v1alpha1", "kind": "RemoteCommand",
        "metadata": {"name": "audited", "namespace": ns}, "spec": aks("aks1", "echo audited")});
    let out = Cluster::get().kubectl_stdin(
        &[
            "create",
            "--as",
            "alice",
            "--as-group",
            "system:masters",
            "-f",
            "-",
        ],
        &manifest.to_string(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_finished(&client, &ns, "audited").await;

    // The API server: alice created it, and its uid.
    let audit_log = Cluster::get().dir.join("audit.log");
    let uid = support::wait_until(
        std::time::Duration::from_secs(30),
        "the API server's audit event",
        || async {
            let text = std::fs::read_to_string(&audit_log).ok()?;
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|e| {
                    e["objectRef"]["namespace"] == ns.as_str()
                        && e["objectRef"]["resource"] == "remotecommands"
                        && e["stage"] == "ResponseComplete"
                        && e["impersonatedUser"]["username"] == "alice"
                })
                .and_then(|e| {
                    e["responseObject"]["metadata"]["uid"]
                        .as_str()
                        .map(str::to_string)
                })
        },
    )
    .await;
    // The operator: that uid, the target, the correlation id.
    let line = operator
        .logs()
        .lines()
        // `kubectl logs --prefix`: "[pod/<name>/<container>] {json}".
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l[l.find('{')?..]).ok())
        .find(|e| e["audit"] == true && e["uid"] == uid.as_str())
        .unwrap_or_else(|| panic!("no audit line for uid {uid}:\n{}", operator.logs()));
    assert_eq!(
        line["resource_id"],
        support::emulator::aks_id("aks1").as_str()
    );
    let correlation = line["correlation_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // ARM: the run command under that correlation id.
    let requests = emulator.requests().await;
    assert!(
        requests
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["correlationId"] == correlation.as_str()
                && e["operation"]
                    .as_str()
                    .is_some_and(|o| o.to_ascii_lowercase().contains("runcommand"))),
        "ARM saw no run command with correlation id {correlation}: {requests}"
    );
}

/// A junk credential Secret naming a victim's client id (with a wrong secret) cannot drain the
/// victim's ARM budget: the operator authenticates before it charges a bucket. Ten such exports
/// come first; with a write budget of one request per 20 s, the victim's command still goes out
/// at once.
#[tokio::test]
async fn a_junk_secret_naming_a_victims_client_id_cannot_spend_its_budget() {
    let _turn = NODE.lock().await;
    let (client, ns) = support::rcmd::setup("budget-thief").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let _op = Installed::install_with(
        &client,
        &emulator,
        &ns,
        "arm: {writeBurst: 1, writeRate: 0.05}\n",
    )
    .await;
    let junk: Secret = serde_json::from_value(json!({
        "metadata": {"name": "junk"},
        "stringData": {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": support::emulator::CLIENT_ID, "AZURE_CLIENT_SECRET": "not-the-secret"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &junk)
        .await
        .unwrap();
    let exports = Api::<kubeinvoke::api::KubeconfigExport>::namespaced(client.clone(), &ns);
    for i in 0..10 {
        let mut spec = support::kcx::spec(
            support::kcx::aks("aks1", "User"),
            &format!("junk-{i}"),
            "Kubeconfig",
        );
        spec["credentialRef"] = json!({"name": "junk"});
        let k: kubeinvoke::api::KubeconfigExport = serde_json::from_value(json!({
            "apiVersion": "kubeinvoke.io/v1alpha1", "kind": "KubeconfigExport",
            "metadata": {"name": format!("junk-{i}")}, "spec": spec,
        }))
        .unwrap();
        exports.create(&PostParams::default(), &k).await.unwrap();
    }
    support::wait_until(
        std::time::Duration::from_secs(60),
        "every junk export to have been tried",
        || async {
            let list = exports.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .all(|k| k.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Forbidden"))
                .then_some(())
        },
    )
    .await;
    // The victim: the real credential, 40 s to run (20 s of it may go to waiting for budget).
    let mut spec = aks("aks1", "echo victim");
    spec["timeoutSeconds"] = json!(40);
    create(&client, &ns, "victim", spec).await;
    let rc = wait_finished(&client, &ns, "victim").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
}
