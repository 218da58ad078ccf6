//! What real Azure answers when things go wrong, end to end: the real operator binary against the
//! local kube-apiserver v1.20.2 and the emulator made to answer as Azure does (sources in
//! docs/azure-behaviour.md). One test per behaviour; each would fail with the old handling.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use support::emulator::{CLIENT_ID, CLIENT_SECRET, Emulator, TENANT, group_id, world};
use support::operator::Operator;
use support::rcmd::{aci_shell, aks, create, get, message, outcome, setup, wait_finished};

/// A second Entra tenant, where the cluster `aks-aad-elsewhere` has its Entra integration.
const OTHER_TENANT: &str = "00000000-0000-0000-0000-0000000000aa";

const CLUSTERS: &str = r#"          - {name: aks-slow, commandDuration: 4}
          - {name: aks-unschedulable, runCommandFailure: {reason: KubernetesPerformanceError, message: "Pod is not schedulable: Insufficient resources for the RunCommand pod. Consider adjusting AutoScaler settings or node pool size.", failFirst: 1, onPost: true, status: 500}}
          - {name: aks-webhook, runCommandFailure: {reason: KubernetesOperationError, message: "Failed to run command in managed cluster due to kubernetes failure. details: admission webhook \"validation.gatekeeper.sh\" denied the request: [no-privileged] command pods are not allowed", onPost: true}}
          - {name: aks-lost-results, resultsNotFound: true}
          - {name: aks-stopped, powerState: Stopped}
          - {name: aks-aad-elsewhere, aadManaged: true, aadTenantId: "00000000-0000-0000-0000-0000000000aa"}"#;

const GROUPS: &str = r#"          - name: cg-stopped
            state: Stopped
            containers: [{name: app}]
          - name: cg-windows
            osType: Windows
            containers: [{name: app}]
"#;

/// The shared world: the default one plus the clusters and groups above, a second tenant, and the
/// same application registered there too (a multi-tenant app).
fn full_world(principals: &str) -> String {
    let w = world(CLUSTERS, "")
        .replace(
            &format!(r#"tenants: [{{id: "{TENANT}"}}]"#),
            &format!(r#"tenants: [{{id: "{TENANT}"}}, {{id: "{OTHER_TENANT}"}}]"#),
        )
        .replace(
            "        containerGroups:\n",
            &format!("        containerGroups:\n{GROUPS}"),
        );
    let extra = format!(
        "  - {{tenantId: \"{OTHER_TENANT}\", clientId: \"{CLIENT_ID}\", clientSecret: \"{CLIENT_SECRET}\"}}\n{principals}"
    );
    w.replacen("subscriptions:\n", &format!("{extra}subscriptions:\n"), 1)
}

fn start(ns: &str, emulator_args: &[&str], operator_args: &[&str]) -> (Emulator, Operator) {
    let emulator = Emulator::start(&full_world(""), emulator_args);
    let operator = Operator::start(&emulator, ns, operator_args);
    (emulator, operator)
}

fn exec_sessions(counters: &Value) -> u64 {
    counters["execSessions"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// Item 1: ACI hands out exec websockets on hosts of their own (`<id>.<region>.atlas…:19390`),
/// not the ARM endpoint's; the operator joins them where the cloud says they may be, and refuses
/// any other host before a byte of the command is typed.
#[tokio::test]
async fn aci_exec_runs_on_the_exec_host_aci_names_and_nowhere_else() {
    let (client, ns) = setup("az-exec-host").await;
    let (emulator, _operator) = start(&ns, &[], &[]);
    assert_ne!(
        emulator.exec_host,
        reqwest::Url::parse(&emulator.arm)
            .unwrap()
            .host_str()
            .unwrap(),
        "the emulator serves exec on a host of its own"
    );
    create(
        &client,
        &ns,
        "joined",
        aci_shell("cg1", "echo joined; exit 3"),
    )
    .await;
    let rc = wait_finished(&client, &ns, "joined").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "NonZeroExit".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(rc.status.as_ref().and_then(|s| s.exit_code), Some(3));

    // An operator that does not know the exec host never joins it.
    let (client, ns) = setup("az-exec-refused").await;
    let (emulator, _operator) = start(&ns, &[], &["--aci-exec-hosts", "exec.example"]);
    create(
        &client,
        &ns,
        "refused",
        aci_shell("cg1", "echo must-not-run"),
    )
    .await;
    let rc = wait_finished(&client, &ns, "refused").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "InvalidSpec".into()),
        "{:?}",
        rc.status
    );
    assert!(
        message(&rc).contains("not an ACI exec host"),
        "{}",
        message(&rc)
    );
    assert_eq!(exec_sessions(&emulator.counters().await), 0);
}

/// Item 2: `KubernetesPerformanceError` means "did not start" whatever its wording and status; an
/// admission webhook's denial is final and says which webhook.
#[tokio::test]
async fn did_not_start_is_read_by_error_code_and_a_webhook_denial_is_final() {
    let (client, ns) = setup("az-not-started").await;
    let (emulator, _operator) = start(&ns, &[], &[]);
    let mut spec = aks("aks-unschedulable", "echo scheduled-at-last");
    spec["maxAttempts"] = json!(3);
    create(&client, &ns, "unschedulable", spec).await;
    let mut spec = aks("aks-webhook", "echo denied");
    spec["maxAttempts"] = json!(3);
    spec["dispatchPolicy"] = json!("AtLeastOnce");
    create(&client, &ns, "webhook", spec).await;

    let rc = wait_finished(&client, &ns, "unschedulable").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(rc.status.as_ref().and_then(|s| s.attempts), Some(2));

    let rc = wait_finished(&client, &ns, "webhook").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "AdmissionDenied".into()),
        "{:?}",
        rc.status
    );
    assert!(
        message(&rc).contains("validation.gatekeeper.sh"),
        "{}",
        message(&rc)
    );
    assert_eq!(rc.status.as_ref().and_then(|s| s.attempts), Some(1));
    let posts = emulator.requests().await;
    let webhook_posts = posts
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["method"] == "POST"
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("aks-webhook/runCommand"))
        })
        .count();
    assert_eq!(webhook_posts, 1, "a denial is never sent again: {posts}");
}

/// Item 3: `commandResults` 404 for an accepted command while the cluster exists: its pod never
/// reached Running (or its result expired). Sent again only under AtLeastOnce, up to
/// `maxAttempts`; then, and under AtMostOnce at once, `ResultUnavailable`.
#[tokio::test]
async fn a_result_lost_while_the_cluster_exists_is_sent_again_only_under_at_least_once() {
    let (client, ns) = setup("az-404").await;
    let (emulator, _operator) = start(&ns, &[], &[]);
    create(&client, &ns, "once", aks("aks-lost-results", "echo once")).await;
    let mut spec = aks("aks-lost-results", "echo twice");
    spec["dispatchPolicy"] = json!("AtLeastOnce");
    spec["maxAttempts"] = json!(2);
    create(&client, &ns, "again", spec).await;

    let rc = wait_finished(&client, &ns, "once").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "ResultUnavailable".into()),
        "{:?}",
        rc.status
    );
    assert!(message(&rc).contains("404"), "{}", message(&rc));
    assert_eq!(emulator.dispatches("echo once").await, 1);
    let rc = wait_finished(&client, &ns, "again").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "ResultUnavailable".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(emulator.dispatches("echo twice").await, 2);
}

/// Item 4: a new principal (AADSTS700016 while the directory replicates) and a new role
/// assignment (403 for a while) settle on their own: the run waits with the reason shown, then
/// runs.
#[tokio::test]
async fn a_principal_or_role_still_replicating_is_waited_for() {
    let (client, ns) = setup("az-replicating").await;
    let fresh = "55555555-5555-5555-5555-555555555555";
    let granted = "66666666-6666-6666-6666-666666666666";
    let principals = format!(
        "  - {{tenantId: \"{TENANT}\", clientId: \"{fresh}\", clientSecret: \"fresh-secret\", notReplicatedForSeconds: 8}}\n  - {{tenantId: \"{TENANT}\", clientId: \"{granted}\", clientSecret: \"granted-secret\", roleAssignmentDelaySeconds: 8}}\n"
    );
    let emulator = Emulator::start(&full_world(&principals), &[]);
    let _operator = Operator::start(&emulator, &ns, &[]);
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    for (name, id, secret) in [
        ("fresh", fresh, "fresh-secret"),
        ("granted", granted, "granted-secret"),
    ] {
        let s: Secret = serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {
            "AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": id, "AZURE_CLIENT_SECRET": secret}}))
        .unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
        let mut spec = aks("aks1", &format!("echo as-{name}"));
        spec["credentialRef"] = json!({"name": name});
        spec["timeoutSeconds"] = json!(120);
        create(&client, &ns, name, spec).await;
    }
    for name in ["fresh", "granted"] {
        let rc = wait_finished(&client, &ns, name).await;
        assert_eq!(
            outcome(&rc),
            ("Succeeded".into(), "Completed".into()),
            "{name}: {:?}",
            rc.status
        );
        assert_eq!(emulator.dispatches(&format!("echo as-{name}")).await, 1);
    }
    let events = support::rcmd::events(&ns);
    assert!(events.contains("Forbidden"), "the wait was shown: {events}");
}

/// Item 5: ARM refuses a body over 4 MB: the whole runCommand body counts (files, command, token),
/// and such a run is refused before it is sent, as `ContextTooLarge`.
#[tokio::test]
async fn a_run_command_body_past_arms_limit_is_refused_before_sending() {
    let (client, ns) = setup("az-413").await;
    let (emulator, _operator) = start(&ns, &[], &[]);
    // Random bytes do not compress: 3 × 1 040 000 bytes are about 4.16 MB once zipped and
    // base64-encoded, under --max-context-bytes (4 MiB); the command's 60 kB tip the body over.
    let maps = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    let mut files = Vec::new();
    for i in 0..3 {
        // xorshift64: bytes deflate cannot shrink.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1);
        let bytes: Vec<u8> = (0..1_040_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("noise-{i}")},
            "binaryData": {"blob": k8s_openapi::ByteString(bytes)},
        }))
        .unwrap();
        maps.create(&PostParams::default(), &cm).await.unwrap();
        files.push(json!({"configMapRef": {"name": format!("noise-{i}"), "items": [{"key": "blob", "path": format!("blob-{i}")}]}}));
    }
    let command = format!("true # {}", "x".repeat(60_000));
    let mut spec = aks("aks1", &command);
    spec["files"] = json!(files);
    create(&client, &ns, "too-large", spec).await;
    let rc = wait_finished(&client, &ns, "too-large").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "ContextTooLarge".into()),
        "{:?}",
        rc.status
    );
    assert!(message(&rc).contains("ARM's limit"), "{}", message(&rc));
    assert_eq!(emulator.dispatches(&command).await, 0);
}

/// Item 6: a command line longer than a terminal line would be cut by the PTY into a different
/// command: refused before anything is sent.
#[tokio::test]
async fn a_shell_line_the_terminal_would_cut_is_refused() {
    let (client, ns) = setup("az-long-line").await;
    let (emulator, _operator) = start(&ns, &[], &[]);
    let command = format!("echo {}", "a".repeat(5000));
    create(&client, &ns, "long-line", aci_shell("cg1", &command)).await;
    let rc = wait_finished(&client, &ns, "long-line").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "InvalidSpec".into()),
        "{:?}",
        rc.status
    );
    assert!(message(&rc).contains("4095"), "{}", message(&rc));
    let counters = emulator.counters().await;
    assert_eq!(exec_sessions(&counters), 0, "{counters}");
}

/// Item 7: a stopped cluster, a stopped container group, and `shell` on Windows each get their
/// own reason before any dispatch.
#[tokio::test]
async fn targets_that_are_not_running_are_refused_before_dispatch() {
    let (client, ns) = setup("az-stopped").await;
    let (emulator, _operator) = start(&ns, &[], &[]);
    create(
        &client,
        &ns,
        "aks-stopped",
        aks("aks-stopped", "echo on-stopped"),
    )
    .await;
    create(
        &client,
        &ns,
        "cg-stopped",
        aci_shell("cg-stopped", "echo on-stopped-group"),
    )
    .await;
    create(
        &client,
        &ns,
        "cg-windows",
        aci_shell("cg-windows", "echo on-windows"),
    )
    .await;
    for (name, want) in [
        ("aks-stopped", "TargetNotRunning"),
        ("cg-stopped", "TargetNotRunning"),
        ("cg-windows", "InvalidSpec"),
    ] {
        let rc = wait_finished(&client, &ns, name).await;
        assert_eq!(
            outcome(&rc),
            ("Failed".into(), want.into()),
            "{name}: {:?}",
            rc.status
        );
    }
    let rc = get(&client, &ns, "cg-windows").await;
    assert!(message(&rc).contains("Windows"), "{}", message(&rc));
    assert_eq!(emulator.dispatches("echo on-stopped").await, 0);
    assert_eq!(exec_sessions(&emulator.counters().await), 0);
}

/// Item 8: the `clusterToken` comes from the tenant of the cluster's Entra integration
/// (`aadProfile.tenantID`), not the credential's home tenant.
#[tokio::test]
async fn the_cluster_token_comes_from_the_clusters_tenant() {
    let (client, ns) = setup("az-aad-tenant").await;
    let (emulator, _operator) = start(&ns, &[], &[]);
    create(
        &client,
        &ns,
        "elsewhere",
        aks("aks-aad-elsewhere", "echo aad-elsewhere"),
    )
    .await;
    let rc = wait_finished(&client, &ns, "elsewhere").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(emulator.dispatches("echo aad-elsewhere").await, 1);
}

/// Item 9: ARM's in-progress answers carry `startedAt`; the run remembers it.
#[tokio::test]
async fn a_start_seen_while_polling_is_remembered() {
    let (client, ns) = setup("az-started").await;
    let (_emulator, _operator) = start(&ns, &[], &[]);
    create(&client, &ns, "slow", aks("aks-slow", "echo slow")).await;
    let seen = support::wait_until(
        Duration::from_secs(30),
        "status.commandStartedAt while the command runs",
        || {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                let rc = get(&client, &ns, "slow").await;
                let s = rc.status?;
                (s.phase == Some(kubeinvoke::api::Phase::Running))
                    .then_some(s.command_started_at)
                    .flatten()
            }
        },
    )
    .await;
    let rc = wait_finished(&client, &ns, "slow").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(
        rc.status.and_then(|s| s.command_started_at).as_deref(),
        Some(seen.as_str())
    );
}

/// Item 11: ARM gives a runCommand POST 60 s: a dispatch is not started with less left.
#[tokio::test]
async fn no_dispatch_starts_with_less_than_arms_timeout_left() {
    let (client, ns) = setup("az-headroom").await;
    let (emulator, _operator) = start(&ns, &[], &[]);
    let mut spec = aks("aks1", "echo late");
    spec["timeoutSeconds"] = json!(125);
    spec["files"] = json!([{"configMapRef": {"name": "arrives-late"}}]);
    create(&client, &ns, "late", spec).await;
    // The file arrives when 70 s of 125 are used: 55 s are left, less than ARM's 60.
    let created = std::time::Instant::now();
    support::wait_until(Duration::from_secs(90), "70 s to pass", || async {
        (created.elapsed() >= Duration::from_secs(70)).then_some(())
    })
    .await;
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "arrives-late"}, "data": {"a": "b"}}))
            .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let rc = wait_finished(&client, &ns, "late").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "DeadlineExceeded".into()),
        "{:?}",
        rc.status
    );
    assert!(message(&rc).contains("not dispatched"), "{}", message(&rc));
    assert_eq!(emulator.dispatches("echo late").await, 0);
}

/// Item 12: a `Retry-After` of 2^64-1 seconds on every poll neither panics the operator nor stalls
/// the run past the cap.
#[tokio::test]
async fn an_absurd_retry_after_never_crashes_the_operator() {
    let (client, ns) = setup("az-retry-after").await;
    let (emulator, mut operator) = start(&ns, &[], &[]);
    emulator
        .put_faults(
            r#"{"aks.commandResult": {"throttleRate": 1.0, "retryAfter": "18446744073709551615"}}"#,
        )
        .await;
    create(&client, &ns, "hostile", aks("aks1", "echo hostile-header")).await;
    support::emulator::wait_counters(&emulator, "a throttled poll", |c| {
        c["throttled429"].as_u64().unwrap_or(0) + c["injectedFaults"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    // The answer was handled (a panic would have ended the reconcile before this log line).
    support::wait_until(
        Duration::from_secs(60),
        "the throttled poll handled",
        || async {
            operator
                .logs()
                .contains("polling failed; retrying")
                .then_some(())
        },
    )
    .await;
    emulator.put_faults("{}").await;
    assert!(
        operator.is_running(),
        "the operator died: {}",
        operator.logs()
    );
    let rc = get(&client, &ns, "hostile").await;
    assert!(
        rc.status.as_ref().and_then(|s| s.phase) != Some(kubeinvoke::api::Phase::Failed),
        "{:?}",
        rc.status
    );
    assert!(
        operator.is_running(),
        "the operator died: {}",
        operator.logs()
    );
    assert!(!operator.logs().contains("panicked"), "{}", operator.logs());
}

/// Item 13: names up to the CRD's limit work: the output Secret's name and label are derived to
/// fit Kubernetes' limits.
#[tokio::test]
async fn a_remote_command_with_a_name_of_253_characters_completes() {
    let (client, ns) = setup("az-long-name").await;
    let (_emulator, _operator) = start(&ns, &[], &[]);
    let name = format!("long-{}", "n".repeat(248));
    assert_eq!(name.len(), 253);
    create(&client, &ns, &name, aks("aks1", "echo long-name")).await;
    let rc = wait_finished(&client, &ns, &name).await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    let secret = rc.status.and_then(|s| s.output_secret_name).unwrap();
    assert!(secret.len() <= 253, "{secret}");
    let stored = Api::<Secret>::namespaced(client.clone(), &ns)
        .get(&secret)
        .await
        .unwrap();
    assert_eq!(
        stored.metadata.annotations.unwrap()["kubeinvoke.io/remote-command"],
        name
    );
}

/// Item 2 (the group view): a container group id that does not exist is `TargetNotFound`.
#[tokio::test]
async fn an_unknown_container_group_is_not_found_before_exec() {
    let (client, ns) = setup("az-no-group").await;
    let (emulator, _operator) = start(&ns, &[], &[]);
    let mut spec = aci_shell("cg1", "echo nowhere");
    spec["target"]["containerInstance"]["resourceId"] = json!(group_id("cg-none"));
    create(&client, &ns, "nowhere", spec).await;
    let rc = wait_finished(&client, &ns, "nowhere").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "TargetNotFound".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(exec_sessions(&emulator.counters().await), 0);
}

/// Item 10: a quiet session survives a network path that drops idle flows (Azure's load
/// balancers: 4 minutes by default; the emulator: 40 s), because the operator pings it.
#[tokio::test]
async fn a_quiet_shell_session_is_kept_alive_by_pings() {
    let (client, ns) = setup("az-keepalive").await;
    let (_emulator, _operator) = start(&ns, &["--aci-idle-drop-seconds", "40"], &[]);
    let mut spec = aci_shell("cg1", "sleep 45; echo awake");
    spec["timeoutSeconds"] = json!(120);
    create(&client, &ns, "quiet", spec).await;
    let rc = support::rcmd::wait_for(&client, &ns, "quiet", "a terminal phase", |rc| {
        rc.status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|p| p.is_terminal())
    })
    .await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
}

/// Item 10: in direct mode (no shell, no exit code) a connection lost without a close frame says
/// nothing about the executable's end: `SessionInterrupted`, not a successful end.
#[tokio::test]
async fn a_direct_session_lost_without_a_close_frame_is_interrupted() {
    let (client, ns) = setup("az-lost").await;
    let (_emulator, _operator) = start(&ns, &["--aci-idle-drop-seconds", "3"], &[]);
    let spec = json!({
        "target": {"containerInstance": {"resourceId": group_id("cg1"), "container": "app"}},
        "command": "/bin/cat",
        "timeoutSeconds": 60,
    });
    create(&client, &ns, "lost", spec).await;
    let rc = wait_finished(&client, &ns, "lost").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "SessionInterrupted".into()),
        "{:?}",
        rc.status
    );
    assert!(message(&rc).contains("close frame"), "{}", message(&rc));
}
