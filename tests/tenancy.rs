//! Tenants are adversaries: workload identity bound to the namespace. Two namespaces with their own
//! ServiceAccounts and federated credentials run commands side by side, each seen by the emulator
//! as its own principal; `mallory` naming their client ids gets nothing: Entra (the emulator, which
//! checks the token's signature against the API server's keys, its issuer, subject, audience and
//! expiry) refuses every exchange, and no ARM request is ever made on mallory's behalf.

mod support;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use support::emulator::{Emulator, TENANT, federated, world};
use support::operator::Operator;
use support::rcmd::{aks, create, outcome, output, wait_finished};
use support::{Cluster, install_crds, namespace};

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

#[tokio::test]
async fn namespaces_act_only_with_their_own_federated_identity() {
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let ns_a = tenant(&client, "team-a", TEAM_A).await;
    let ns_b = tenant(&client, "team-b", TEAM_B).await;
    // mallory has a ServiceAccount of the same name and names team A's client id.
    let mallory = tenant(&client, "mallory", TEAM_A).await;
    let emulator = Emulator::start(&federated_world(&ns_a, &ns_b), &[]);
    let _a = Operator::start(&emulator, &ns_a, &[]);
    let _b = Operator::start(&emulator, &ns_b, &[]);
    let _m = Operator::start(&emulator, &mallory, &[]);

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
async fn the_operator_identity_stays_within_its_grant() {
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "granted").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let grants = format!(
        r#"[{{"namespace": "{ns}", "scopes": ["/subscriptions/{}/resourceGroups/rg2"]}}, {{"namespace": "other", "adminKubeconfig": true}}]"#,
        support::emulator::SUBSCRIPTION
    );
    let _operator = Operator::start(
        &emulator,
        &ns,
        &[
            "--operator-identity",
            "managed",
            "--operator-identity-grants",
            &grants,
        ],
    );
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
async fn commands_with_the_operator_identity_need_their_own_grant() {
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "exports-only").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let _operator = Operator::start(
        &emulator,
        &ns,
        &[
            "--operator-identity",
            "managed",
            "--global-credential-namespaces",
            &ns,
        ],
    );
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
async fn a_cluster_read_by_one_identity_does_not_stand_in_for_another() {
    const RUNNER: &str = "55555555-5555-5555-5555-555555555555";
    let (client, ns) = support::rcmd::setup("cache-per-principal").await;
    let runner = format!(
        "  - {{tenantId: \"{TENANT}\", clientId: \"{RUNNER}\", clientSecret: \"runner-secret\", allowedActions: \
         [\"Microsoft.ContainerService/managedClusters/runcommand/action\", \"Microsoft.ContainerService/managedClusters/commandResults/read\"]}}\n"
    );
    let w = world("", "").replacen("principals:\n", &format!("principals:\n{runner}"), 1);
    let emulator = Emulator::start(&w, &[]);
    let _operator = Operator::start(&emulator, &ns, &[]);
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
async fn the_audit_trail_joins_user_resource_and_arm_request() {
    let (client, ns) = support::rcmd::setup("audit-join").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let operator = Operator::start(&emulator, &ns, &[]);
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
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
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
async fn a_junk_secret_naming_a_victims_client_id_does_not_spend_its_budget() {
    let (client, ns) = support::rcmd::setup("budget-thief").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let _operator = Operator::start(
        &emulator,
        &ns,
        &["--arm-write-burst", "1", "--arm-write-rate", "0.05"],
    );
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

/// Tenants choose subscription ids freely; none of them becomes a metrics label, and the series
/// count does not grow with them.
#[tokio::test]
async fn tenant_chosen_subscriptions_do_not_grow_the_metrics() {
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "noisy").await;
    support::credential_secret(&client, &ns, "kubeinvoke-credentials").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let operator = Operator::start(&emulator, &ns, &[]);
    let mut subscriptions = Vec::new();
    for i in 0..60 {
        let sub = format!("{:08x}-0000-4000-8000-{:012x}", 0xdead0000u32 + i, i);
        let id = format!(
            "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1"
        );
        let spec =
            json!({"target": {"aks": {"resourceId": id}}, "command": "true", "timeoutSeconds": 30});
        create(&client, &ns, &format!("noise-{i}"), spec).await;
        subscriptions.push(sub);
    }
    for i in 0..60 {
        wait_finished(&client, &ns, &format!("noise-{i}")).await;
    }
    let url = format!("{}/metrics", operator.http_url().await);
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let leaked: Vec<&String> = subscriptions
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .collect();
    assert!(
        leaked.is_empty(),
        "subscription ids in /metrics: {leaked:?}"
    );
    assert!(
        !text.contains(support::emulator::CLIENT_ID),
        "a client id in /metrics"
    );
    let bucket_series = text
        .lines()
        .filter(|l| l.starts_with("kubeinvoke_arm_bucket"))
        .count();
    assert!(bucket_series <= 6, "{bucket_series} bucket series:\n{text}");
}
