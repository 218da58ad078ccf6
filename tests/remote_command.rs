//! RemoteCommand end to end: the real operator binary against the local kube-apiserver v1.20.2 and
//! the emulator. Each test has its own namespace, emulator and operator.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;
use support::emulator::{self, Emulator, aks_id, group_id, world};
use support::operator::Operator;
use support::rcmd::{self, aks, create, events, outcome, output, setup, wait_finished};

const EXTRA: &str = r#"          - {name: aks-slow, commandDuration: 4}
          - {name: aks-nolocation, acceptWithoutLocation: true}
          - {name: aks-flaky-post, runCommandFailure: {reason: KubernetesPerformanceError, message: "Failed to run command due to cluster perf issue, container command-0 in aks-command namespace did not start within 30s on your cluster, retry may helps.", failFirst: 1, onPost: true}}
          - {name: aks-never-post, runCommandFailure: {reason: KubernetesOperationError, message: "container command-0 in aks-command namespace did not start within 30s", onPost: true}}
          - {name: aks-flaky, runCommandFailure: {reason: KubernetesPerformanceError, message: "container command-0 in aks-command namespace did not start within 30s", failFirst: 1}}
          - {name: aks-never, runCommandFailure: {reason: KubernetesPerformanceError, message: "container command-0 in aks-command namespace did not start within 30s"}}
          - {name: aks-ran-failed, runCommandFailure: {reason: CommandExecutionFailed, message: "the command pod was evicted", started: true}}"#;

fn start(ns: &str, emulator_args: &[&str]) -> (Emulator, Operator) {
    let emulator = Emulator::start(&world(EXTRA, ""), emulator_args);
    let operator = Operator::start(&emulator, ns, &[]);
    (emulator, operator)
}

#[tokio::test]
async fn aks_command_succeeds_with_exit_code_and_output() {
    let (client, ns) = setup("rc-ok").await;
    let (emulator, operator) = start(&ns, &[]);
    let mut spec = aks("aks1", "echo hello-from-aks; echo on-stderr >&2");
    // The tail in status is opt-in.
    spec["output"] = json!({"tailBytes": 2048});
    create(&client, &ns, "hello", spec).await;
    let rc = wait_finished(&client, &ns, "hello").await;
    let status = rc.status.clone().unwrap();
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{status:?}"
    );
    assert_eq!(status.exit_code, Some(0));
    assert_eq!(status.attempts, Some(1));
    // The dispatch's correlation id is a GUID (ARM's contract), kept in status, and what ARM saw.
    let correlation = status.correlation_id.clone().expect("status.correlationId");
    assert!(uuid::Uuid::parse_str(&correlation).is_ok(), "{correlation}");
    let log = emulator.requests().await;
    assert!(
        log.as_array().unwrap().iter().any(|e| e["operation"]
            .as_str()
            .is_some_and(|o| o.contains("RunCommand") || o.contains("runCommand"))
            && e["correlationId"] == correlation.as_str()),
        "no run command with correlation id {correlation}: {log}"
    );
    // The audit line joins the resource (uid: the API server's audit log names who created it) to
    // the target and to the correlation id (Azure's activity log).
    let uid = rc.metadata.uid.clone().unwrap_or_default();
    let audit: Vec<serde_json::Value> = operator
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["audit"] == true && e["uid"] == uid.as_str())
        .collect();
    assert_eq!(audit.len(), 1, "one audit line per attempt: {audit:?}");
    assert_eq!(audit[0]["correlation_id"], correlation.as_str());
    assert_eq!(audit[0]["resource_id"], aks_id("aks1").as_str());
    assert_eq!(audit[0]["attempt"], 1);
    assert!(
        status
            .command_id
            .as_deref()
            .is_some_and(|id| id.len() == 32),
        "{status:?}"
    );
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    let tail = status.output_tail.clone().unwrap_or_default();
    assert!(
        tail.contains("hello-from-aks") && tail.contains("on-stderr"),
        "{tail}"
    );
    assert_eq!(output(&client, &ns, &rc).await, tail);
    let secret = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("hello-output")
        .await
        .expect("output Secret");
    assert_eq!(secret.data.unwrap()["exitCode"].0, b"0");
    let owner = &secret.metadata.owner_references.expect("owner reference")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("RemoteCommand", rc.metadata.uid.as_deref().unwrap())
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Completed")
    );
    assert_eq!(status.observed_generation, 1);
    let events = events(&ns);
    assert!(
        events.contains("Dispatched") && events.contains("Completed"),
        "{events}"
    );
}

#[tokio::test]
async fn non_zero_exit_fails_with_non_zero_exit() {
    let (client, ns) = setup("rc-exit").await;
    let (_emulator, _operator) = start(&ns, &[]);
    create(
        &client,
        &ns,
        "three",
        aks("aks1", "echo before-failing; exit 3"),
    )
    .await;
    let rc = wait_finished(&client, &ns, "three").await;
    let status = rc.status.clone().unwrap();
    assert_eq!(outcome(&rc), ("Failed".into(), "NonZeroExit".into()));
    assert_eq!(status.exit_code, Some(3));
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True"),
        "{status:?}"
    );
    assert!(output(&client, &ns, &rc).await.contains("before-failing"));
}

/// A tenant cannot send Secrets it did not mark for it, nor credentials, nor more bytes than the
/// context may hold; each is refused before any ARM request, with its reason.
#[tokio::test]
async fn files_refuse_credentials_unlabelled_secrets_and_oversized_content() {
    let (client, ns) = setup("rc-files-deny").await;
    let (emulator, _operator) = start(&ns, &[]);
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    for (name, labelled) in [("plain", false), ("creds-copy", true)] {
        let mut data = json!({"a": "x"});
        if name == "creds-copy" {
            data = json!({"AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s"});
        }
        let mut meta = json!({"name": name});
        if labelled {
            meta["labels"] = json!({"kubeinvoke.io/allow-as-file": "true"});
        }
        let secret: Secret =
            serde_json::from_value(json!({"metadata": meta, "stringData": data})).unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    // One ConfigMap key of 1 MiB, named 5 times: over the 4 MiB limit before anything is copied.
    let big: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "big"}, "data": {"k": "x".repeat(1024 * 1024 - 64)}}),
    )
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &big)
        .await
        .unwrap();
    let items: Vec<_> = (0..5)
        .map(|i| json!({"key": "k", "path": format!("k{i}")}))
        .collect();
    for (name, files, reason) in [
        (
            "credential",
            json!([{"secretRef": {"name": "kubeinvoke-credentials"}}]),
            "FileNotAllowed",
        ),
        (
            "unlabelled",
            json!([{"secretRef": {"name": "plain"}}]),
            "FileNotAllowed",
        ),
        (
            "looks-like-credentials",
            json!([{"secretRef": {"name": "creds-copy"}}]),
            "FileNotAllowed",
        ),
        (
            "oversized",
            json!([{"configMapRef": {"name": "big", "items": items}}]),
            "ContextTooLarge",
        ),
    ] {
        let mut spec = aks("aks1", &format!("echo {name}"));
        spec["files"] = files;
        spec["timeoutSeconds"] = json!(3);
        create(&client, &ns, name, spec).await;
        let rc = wait_finished(&client, &ns, name).await;
        assert_eq!(
            outcome(&rc),
            ("Failed".into(), reason.into()),
            "{name}: {:?}",
            rc.status
        );
        assert_eq!(
            emulator.dispatches(&format!("echo {name}")).await,
            0,
            "{name} reached ARM"
        );
    }
    // The schema caps the lists: 300 items on one key is refused by the API server.
    let items: Vec<_> = (0..300)
        .map(|i| json!({"key": "k", "path": format!("k{i}")}))
        .collect();
    let mut spec = aks("aks1", "true");
    spec["files"] = json!([{"configMapRef": {"name": "big", "items": items}}]);
    let rc = json!({"apiVersion": "kubeinvoke.io/v1alpha1", "kind": "RemoteCommand",
                    "metadata": {"name": "too-many", "namespace": ns}, "spec": spec});
    let out = support::Cluster::get().kubectl_stdin(&["create", "-f", "-"], &rc.to_string());
    assert!(!out.status.success(), "300 items were accepted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.files.configMapRef.items"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn configmap_and_secret_files_arrive_in_the_working_directory() {
    let (client, ns) = setup("rc-files").await;
    let (_emulator, _operator) = start(&ns, &[]);
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "manifests"}, "data": {"a.txt": "alpha\n", "b.txt": "beta\n"}}),
    )
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "values", "labels": {"kubeinvoke.io/allow-as-file": "true"}}, "stringData": {"prod.yaml": "sigma\n", "unused": "x"}})).unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let mut spec = aks("aks1", "cat a.txt b.txt values/prod.yaml; ls values");
    spec["files"] = json!([
        {"configMapRef": {"name": "manifests"}},
        {"secretRef": {"name": "values", "items": [{"key": "prod.yaml", "path": "values/prod.yaml"}]}}
    ]);
    create(&client, &ns, "files", spec).await;
    let rc = wait_finished(&client, &ns, "files").await;
    assert_eq!(outcome(&rc).1, "Completed", "{:?}", rc.status);
    assert_eq!(
        output(&client, &ns, &rc).await,
        "alpha\nbeta\nsigma\nprod.yaml\n"
    );
}

#[tokio::test]
async fn missing_file_source_is_file_not_found() {
    let (client, ns) = setup("rc-nofile").await;
    let (emulator, _operator) = start(&ns, &[]);
    let mut spec = aks("aks1", "true");
    spec["files"] = json!([{"configMapRef": {"name": "does-not-exist"}}]);
    spec["timeoutSeconds"] = json!(3);
    create(&client, &ns, "nofile", spec).await;
    let rc = wait_finished(&client, &ns, "nofile").await;
    assert_eq!(outcome(&rc), ("Failed".into(), "FileNotFound".into()));
    assert!(
        rc.status
            .unwrap()
            .message
            .unwrap()
            .contains("does-not-exist")
    );
    assert_eq!(
        emulator.counters().await["requests"]["aks.runCommand"]
            .as_u64()
            .unwrap_or(0),
        0
    );
}

#[tokio::test]
async fn aad_cluster_gets_a_cluster_token() {
    let (client, ns) = setup("rc-aad").await;
    let (emulator, _operator) = start(&ns, &[]);
    // The emulator refuses a run on an AAD-managed cluster without a valid clusterToken.
    create(&client, &ns, "aad", aks("aks-aad", "echo aad-ok")).await;
    let rc = wait_finished(&client, &ns, "aad").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(emulator.dispatches("echo aad-ok").await, 1);
}

#[tokio::test]
async fn run_command_disabled_cluster_is_refused_before_dispatch() {
    let (client, ns) = setup("rc-norun").await;
    let (emulator, _operator) = start(&ns, &[]);
    create(&client, &ns, "norun", aks("aks-norun", "true")).await;
    let rc = wait_finished(&client, &ns, "norun").await;
    assert_eq!(outcome(&rc), ("Failed".into(), "RunCommandDisabled".into()));
    assert_eq!(
        emulator.counters().await["requests"]["aks.runCommand"]
            .as_u64()
            .unwrap_or(0),
        0
    );
}

#[tokio::test]
async fn unknown_cluster_is_target_not_found() {
    let (client, ns) = setup("rc-404").await;
    let (_emulator, _operator) = start(&ns, &[]);
    create(&client, &ns, "nowhere", aks("no-such-cluster", "true")).await;
    let rc = wait_finished(&client, &ns, "nowhere").await;
    assert_eq!(outcome(&rc), ("Failed".into(), "TargetNotFound".into()));
    let message = rc.status.unwrap().message.unwrap();
    assert!(
        message.contains("ResourceNotFound") || message.contains("not found"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_credential_secret_is_credential_not_found() {
    let (client, ns) = setup("rc-nocred").await;
    let (_emulator, _operator) = start(&ns, &[]);
    let mut spec = aks("aks1", "true");
    spec["credentialRef"] = json!({"name": "not-there"});
    spec["timeoutSeconds"] = json!(3);
    create(&client, &ns, "nocred", spec).await;
    let rc = wait_finished(&client, &ns, "nocred").await;
    assert_eq!(outcome(&rc), ("Failed".into(), "CredentialNotFound".into()));
    assert!(rc.status.unwrap().message.unwrap().contains("not-there"));
}

/// A run waiting for its credential looks again every few seconds, and each look that finds what
/// the last one found writes nothing: hundreds of waiting runs would otherwise send their whole
/// objects through the API server at every look, and keep new runs from their first one.
#[tokio::test]
async fn a_run_waiting_for_its_credential_looks_again_without_rewriting_its_status() {
    let (client, ns) = setup("rc-waits-quietly").await;
    let (_emulator, operator) = start(&ns, &[]);
    let mut spec = aks("aks1", "true");
    spec["credentialRef"] = json!({"name": "later"});
    create(&client, &ns, "waits", spec).await;
    let waiting = rcmd::wait_for(&client, &ns, "waits", "waiting for its credential", |rc| {
        rc.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("CredentialNotFound")
    })
    .await;
    let series = "kubeinvoke_reconciles_total{controller=\"remote_command\"}";
    let looked = operator.metric(series).await.unwrap_or_default();
    // The watch's echo of the status write, then at least two looks of the retry (every 3 s).
    support::wait_until(
        std::time::Duration::from_secs(30),
        "the operator to look again",
        || async {
            let now = operator.metric(series).await?;
            (now >= looked + 3.0).then_some(())
        },
    )
    .await;
    let after = rcmd::get(&client, &ns, "waits").await;
    assert_eq!(
        after.metadata.resource_version, waiting.metadata.resource_version,
        "the status was written again: {:?}",
        after.status
    );
    // What it waits for comes: it runs.
    support::credential_secret(&client, &ns, "later").await;
    let rc = wait_finished(&client, &ns, "waits").await;
    assert_eq!(outcome(&rc), ("Succeeded".into(), "Completed".into()));
}

/// The operator's own identity is opt-in: by default a namespace without a credential Secret gets
/// nothing, and nothing reaches ARM.
#[tokio::test]
async fn operator_identity_is_not_granted_by_default() {
    let client = support::Cluster::get().client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "rc-noglobal").await;
    let (emulator, _operator) = start(&ns, &[]);
    create(
        &client,
        &ns,
        "borrow",
        json!({"target": {"aks": {"resourceId": emulator::aks_id("aks1")}},
               "command": "echo borrowed-identity", "timeoutSeconds": 3}),
    )
    .await;
    let rc = wait_finished(&client, &ns, "borrow").await;
    assert_eq!(outcome(&rc), ("Failed".into(), "CredentialNotFound".into()));
    let message = rc.status.unwrap().message.unwrap_or_default();
    assert!(
        message.contains("--global-credential-namespaces"),
        "{message}"
    );
    assert_eq!(emulator.dispatches("echo borrowed-identity").await, 0);
}

/// A credential Secret with a client id and no client secret would make the operator present its
/// own ServiceAccount token for that client id: refused before any token request.
#[tokio::test]
async fn a_client_id_without_a_secret_cannot_borrow_the_operator_token() {
    let (client, ns) = setup("rc-borrow").await;
    let (emulator, _operator) = start(&ns, &[]);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "federated"},
        "stringData": {"AZURE_TENANT_ID": emulator::TENANT, "AZURE_CLIENT_ID": "22222222-2222-2222-2222-222222222222"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let mut spec = aks("aks1", "echo borrowed-token");
    spec["credentialRef"] = json!({"name": "federated"});
    spec["timeoutSeconds"] = json!(3);
    create(&client, &ns, "borrow", spec).await;
    let rc = wait_finished(&client, &ns, "borrow").await;
    assert_eq!(outcome(&rc), ("Failed".into(), "CredentialNotFound".into()));
    let message = rc.status.unwrap().message.unwrap_or_default();
    assert!(message.contains("AZURE_CLIENT_SECRET"), "{message}");
    assert_eq!(emulator.dispatches("echo borrowed-token").await, 0);
}

/// A rotated credential Secret takes effect for the very next run: no cached copy of the old one.
#[tokio::test]
async fn a_rotated_client_secret_takes_effect_at_once() {
    let (client, ns) = setup("rc-rotate").await;
    let (emulator, _operator) = start(&ns, &[]);
    create(&client, &ns, "before", aks("aks1", "echo before-rotation")).await;
    let rc = wait_finished(&client, &ns, "before").await;
    assert_eq!(outcome(&rc).1, "Completed", "{:?}", rc.status);
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    secrets
        .patch(
            "kubeinvoke-credentials",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"AZURE_CLIENT_SECRET": "revoked"}})),
        )
        .await
        .unwrap();
    // A refused secret is waited for (a new one may still replicate): a short deadline.
    let mut spec = aks("aks1", "echo after-rotation");
    spec["timeoutSeconds"] = json!(10);
    create(&client, &ns, "after", spec).await;
    let rc = wait_finished(&client, &ns, "after").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "Forbidden".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(emulator.dispatches("echo after-rotation").await, 0);
}

#[tokio::test]
async fn credential_ref_cannot_reach_another_namespace() {
    let (client, ns) = setup("rc-iso").await;
    let other = support::namespace(&client, "rc-iso-other").await;
    support::credential_secret(&client, &other, "team-b-credentials").await;
    let (emulator, _operator) = start(&ns, &[]);
    let mut spec = aks("aks1", "echo must-not-run");
    spec["credentialRef"] = json!({"name": "team-b-credentials"});
    spec["timeoutSeconds"] = json!(3);
    create(&client, &ns, "iso", spec).await;
    let rc = wait_finished(&client, &ns, "iso").await;
    assert_eq!(outcome(&rc), ("Failed".into(), "CredentialNotFound".into()));
    assert_eq!(emulator.dispatches("echo must-not-run").await, 0);
}

#[tokio::test]
async fn a_forbidden_identity_names_the_missing_action() {
    let (client, ns) = setup("rc-403").await;
    let (emulator, _operator) = start(&ns, &[]);
    let limited: Secret = serde_json::from_value(json!({"metadata": {"name": "limited"}, "stringData": {
        "AZURE_TENANT_ID": emulator::TENANT, "AZURE_CLIENT_ID": "44444444-4444-4444-4444-444444444444", "AZURE_CLIENT_SECRET": "limited-secret"}})).unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &limited)
        .await
        .unwrap();
    let mut spec = aks("aks1", "true");
    spec["credentialRef"] = json!({"name": "limited"});
    // A 403 is waited for (a role assignment may still be on its way): a short deadline.
    spec["timeoutSeconds"] = json!(5);
    create(&client, &ns, "denied", spec).await;
    let rc = wait_finished(&client, &ns, "denied").await;
    assert_eq!(outcome(&rc), ("Failed".into(), "Forbidden".into()));
    let message = rc.status.unwrap().message.unwrap();
    assert!(
        message
            .to_lowercase()
            .contains("microsoft.containerservice/managedclusters/runcommand/action"),
        "{message}"
    );
    drop(emulator);
}

#[tokio::test]
async fn command_did_not_start_is_retried() {
    let (client, ns) = setup("rc-retry").await;
    let (emulator, _operator) = start(&ns, &[]);
    create(
        &client,
        &ns,
        "flaky",
        aks("aks-flaky", "echo second-time-lucky"),
    )
    .await;
    let rc = wait_finished(&client, &ns, "flaky").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(rc.status.unwrap().attempts, Some(2));
    assert_eq!(emulator.dispatches("echo second-time-lucky").await, 2);
}

#[tokio::test]
async fn a_failed_result_with_started_at_is_final_and_never_sent_again() {
    let (client, ns) = setup("rc-ranfail").await;
    let (emulator, _operator) = start(&ns, &[]);
    let mut spec = aks("aks-ran-failed", "echo ran-then-failed");
    // Both policies and spare attempts: nothing may send it again, since it did start.
    spec["maxAttempts"] = json!(3);
    spec["dispatchPolicy"] = json!("AtLeastOnce");
    create(&client, &ns, "ranfail", spec).await;
    let rc = wait_finished(&client, &ns, "ranfail").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "ArmOperationFailed".into()),
        "{:?}",
        rc.status
    );
    let status = rc.status.unwrap();
    assert_eq!(status.attempts, Some(1));
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("CommandExecutionFailed") && message.contains("not dispatched again"),
        "{message}"
    );
    assert!(status.output_secret_name.is_some(), "the logs are kept");
    assert_eq!(emulator.dispatches("echo ran-then-failed").await, 1);
}

#[tokio::test]
async fn command_did_not_start_fails_after_max_attempts() {
    let (client, ns) = setup("rc-dns").await;
    let (emulator, _operator) = start(&ns, &[]);
    let mut spec = aks("aks-never", "echo never");
    spec["maxAttempts"] = json!(2);
    create(&client, &ns, "never", spec).await;
    let rc = wait_finished(&client, &ns, "never").await;
    assert_eq!(outcome(&rc), ("Failed".into(), "CommandDidNotStart".into()));
    let status = rc.status.unwrap();
    assert_eq!(status.attempts, Some(2));
    assert!(
        status
            .message
            .unwrap()
            .contains("KubernetesPerformanceError")
    );
    assert_eq!(emulator.dispatches("echo never").await, 2);
}

#[tokio::test]
async fn timeout_fails_with_deadline_exceeded() {
    let (client, ns) = setup("rc-timeout").await;
    let (_emulator, _operator) = start(&ns, &[]);
    let mut spec = aks("aks1", "sleep 60");
    spec["timeoutSeconds"] = json!(3);
    create(&client, &ns, "slow", spec).await;
    let rc = wait_finished(&client, &ns, "slow").await;
    assert_eq!(outcome(&rc), ("Failed".into(), "DeadlineExceeded".into()));
}

/// Output larger than a Secret can hold (here from an emulator that keeps 3 MB of logs rather than
/// AKS's 512 kB): the end is kept, status says the output was cut, and the run finishes rather than
/// failing on the API server's size limit.
#[tokio::test]
async fn output_larger_than_a_secret_holds_keeps_its_end_and_finishes() {
    let (client, ns) = setup("rc-huge").await;
    let (_emulator, _operator) = start(&ns, &["--log-cap-bytes", "3000000"]);
    let spec = aks(
        "aks1",
        "head -c 1500000 /dev/zero | tr '\\0' x; echo; echo THE-END",
    );
    create(&client, &ns, "huge", spec).await;
    let rc = wait_finished(&client, &ns, "huge").await;
    let status = rc.status.clone().unwrap();
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        status.message
    );
    assert_eq!(status.output_truncated, Some(true));
    assert_eq!(status.output_bytes, Some(900 * 1024));
    // The message says which end was kept.
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("its last {} bytes", 900 * 1024)) && message.contains("dropped"),
        "{message}"
    );
    let out = output(&client, &ns, &rc).await;
    assert_eq!(out.len(), 900 * 1024);
    assert!(
        out.ends_with("x\nTHE-END\n"),
        "{:?}",
        &out[out.len() - 20..]
    );
}

#[tokio::test]
async fn output_over_512_kb_is_capped_and_the_tail_is_valid_utf8() {
    let (client, ns) = setup("rc-big").await;
    let (_emulator, _operator) = start(&ns, &[]);
    // 700 kB of two-byte characters; AKS keeps 512 kB, and a cut may split a character.
    let mut spec = aks(
        "aks1",
        "i=0; while [ $i -lt 7000 ]; do printf 'é%.0s' $(seq 50); echo; i=$((i+1)); done",
    );
    spec["output"] = json!({"tailBytes": 101});
    create(&client, &ns, "big", spec).await;
    let rc = wait_finished(&client, &ns, "big").await;
    let status = rc.status.clone().unwrap();
    assert_eq!(outcome(&rc).1, "Completed", "{status:?}");
    let bytes = status.output_bytes.unwrap();
    assert!(
        bytes <= 512 * 1024 && bytes > 500 * 1024,
        "output of {bytes} bytes"
    );
    // AKS cut it at its 512 kB limit: status says the end may be missing.
    assert_eq!(status.output_truncated, Some(true), "{status:?}");
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("512 kB"),
        "{status:?}"
    );
    let tail = status.output_tail.unwrap();
    assert!(
        tail.len() <= 101 && tail.len() >= 95,
        "tail of {} bytes",
        tail.len()
    );
    // The service's cut falls on a character boundary: no replacement character anywhere.
    assert!(tail.chars().all(|c| c == 'é' || c == '\n'), "{tail:?}");
    let full = output(&client, &ns, &rc).await;
    assert!(
        !full.contains('\u{fffd}'),
        "a split character in the output"
    );
}

/// With less time left than a runCommand POST may take, the command is not sent at all, and the
/// reason says so (a dispatch that late could run after the run was reported as failed).
#[tokio::test]
async fn too_little_time_left_is_not_dispatched() {
    let (client, ns) = setup("rc-late-dispatch").await;
    let (emulator, _operator) = start(&ns, &[]);
    let mut spec = aks("aks1", "echo too-late");
    spec["timeoutSeconds"] = json!(8);
    spec["credentialRef"] = json!({"name": "arrives-late"});
    create(&client, &ns, "late", spec).await;
    // The credential appears when less than half of the timeout (the headroom of an 8 s run) is left.
    rcmd::wait_for(&client, &ns, "late", "waiting for its credential", |rc| {
        rc.status.as_ref().is_some_and(|s| {
            s.reason.as_deref() == Some("CredentialNotFound")
                && s.start_time.as_ref().is_some_and(|t| {
                    k8s_openapi::jiff::Timestamp::now()
                        .duration_since(t.0)
                        .as_secs_f64()
                        > 4.5
                })
        })
    })
    .await;
    support::credential_secret(&client, &ns, "arrives-late").await;
    let rc = wait_finished(&client, &ns, "late").await;
    let status = rc.status.clone().unwrap();
    assert_eq!(outcome(&rc), ("Failed".into(), "DeadlineExceeded".into()));
    let message = status.message.unwrap_or_default();
    // Either it saw the credential with too little time left, or the deadline passed while it waited.
    assert!(
        message.contains("not dispatched") || message.contains("without dispatching"),
        "{message}"
    );
    let counters = emulator.counters().await;
    assert!(
        counters["dispatches"].get("echo too-late").is_none(),
        "dispatched: {counters}"
    );
}

#[tokio::test]
async fn aci_shell_reports_the_real_exit_code_and_clean_output() {
    let (client, ns) = setup("rc-aci").await;
    let (emulator, _operator) = start(&ns, &[]);
    create(
        &client,
        &ns,
        "aci",
        rcmd::aci_shell("cg1", "echo aci-out; echo aci-err >&2; exit 4"),
    )
    .await;
    let rc = wait_finished(&client, &ns, "aci").await;
    let status = rc.status.clone().unwrap();
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "NonZeroExit".into()),
        "{status:?}"
    );
    assert_eq!(status.exit_code, Some(4));
    let out = output(&client, &ns, &rc).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["aci-out", "aci-err"],
        "terminal echo and markers must be stripped: {out:?}"
    );
    assert_eq!(
        emulator.counters().await["execSessions"]["/bin/sh"].as_u64(),
        Some(1)
    );
}

#[tokio::test]
async fn aci_without_shell_has_no_exit_code() {
    let (client, ns) = setup("rc-aci-direct").await;
    let (_emulator, _operator) = start(&ns, &[]);
    create(
        &client,
        &ns,
        "env",
        json!({
            "target": {"containerInstance": {"resourceId": group_id("cg1"), "container": "app"}},
            "command": "pwd",
            "output": {"tailBytes": 64}
        }),
    )
    .await;
    let rc = wait_finished(&client, &ns, "env").await;
    let status = rc.status.clone().unwrap();
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "ExitCodeUnavailable".into()),
        "{status:?}"
    );
    assert_eq!(status.exit_code, None);
    assert!(status.output_tail.unwrap().starts_with('/'));
}

#[tokio::test]
async fn aci_without_shell_rejects_a_command_with_arguments() {
    let (client, ns) = setup("rc-aci-args").await;
    let (emulator, _operator) = start(&ns, &[]);
    create(
        &client,
        &ns,
        "args",
        json!({
            "target": {"containerInstance": {"resourceId": group_id("cg1"), "container": "app"}},
            "command": "ls /"
        }),
    )
    .await;
    let rc = wait_finished(&client, &ns, "args").await;
    assert_eq!(outcome(&rc), ("Failed".into(), "InvalidSpec".into()));
    assert!(rc.status.unwrap().message.unwrap().contains("shell"));
    assert_eq!(
        emulator.counters().await["requests"]["aci.exec"]
            .as_u64()
            .unwrap_or(0),
        0
    );
}

#[tokio::test]
async fn throttling_and_server_errors_complete_without_early_requests() {
    let (client, ns) = setup("rc-faults").await;
    let emulator = Emulator::start(&world(EXTRA, ""), &[]);
    // Reads fail often (429, 500, 503); the dispatch is throttled often too (a 429 is a refusal,
    // safe to send again). No request may come before the Retry-After it was given.
    emulator
        .put_faults(
            r#"{"*": {"retryAfter": 1}, "aks.get": {"throttleRate": 0.3, "error500Rate": 0.2},
            "aks.commandResult": {"throttleRate": 0.3, "error500Rate": 0.1, "error503Rate": 0.1},
            "aks.runCommand": {"throttleRate": 0.4}}"#,
        )
        .await;
    let _operator = Operator::start(&emulator, &ns, &[]);
    for i in 0..6 {
        create(
            &client,
            &ns,
            &format!("storm-{i}"),
            aks("aks1", &format!("echo storm-{i}")),
        )
        .await;
    }
    for i in 0..6 {
        let rc = wait_finished(&client, &ns, &format!("storm-{i}")).await;
        assert_eq!(
            outcome(&rc),
            ("Succeeded".into(), "Completed".into()),
            "{:?}",
            rc.status
        );
        assert_eq!(emulator.dispatches(&format!("echo storm-{i}")).await, 1);
    }
    let counters = emulator.counters().await;
    assert!(
        counters["injectedFaults"].as_u64().unwrap_or(0) > 0,
        "no fault was injected: {counters}"
    );
    assert_eq!(
        counters["earlyRequests"].as_u64(),
        Some(0),
        "requests before their Retry-After: {counters}"
    );
}

#[tokio::test]
async fn killed_while_running_resumes_polling_with_one_dispatch() {
    let (client, ns) = setup("rc-crash-poll").await;
    let (emulator, mut operator) = start(&ns, &[]);
    create(&client, &ns, "survivor", aks("aks-slow", "echo survived")).await;
    rcmd::wait_for(&client, &ns, "survivor", "a commandId", |rc| {
        rc.status.as_ref().is_some_and(|s| s.command_id.is_some())
    })
    .await;
    operator.restart();
    let rc = wait_finished(&client, &ns, "survivor").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(emulator.dispatches("echo survived").await, 1);
}

async fn interrupted_dispatch(policy: &str) -> (kubeinvoke::api::RemoteCommand, u64) {
    let (client, ns) = setup("rc-crash-dispatch").await;
    // ARM handles the dispatch, then holds the answer: the operator dies before it learns the id.
    let (emulator, mut operator) = start(
        &ns,
        &[
            "--fault-ops",
            "aks.runCommand",
            "--response-delay-ms",
            "4000",
        ],
    );
    let command = format!("echo once-{policy}");
    let mut spec = aks("aks1", &command);
    spec["dispatchPolicy"] = json!(policy);
    create(&client, &ns, "interrupted", spec).await;
    emulator::wait_counters(&emulator, "the dispatch to reach ARM", |c| {
        c["dispatches"][&command].as_u64() == Some(1)
    })
    .await;
    let rc = rcmd::get(&client, &ns, "interrupted").await;
    assert!(
        rc.status.as_ref().is_some_and(|s| s.command_id.is_none()),
        "the command id must not be recorded yet: {:?}",
        rc.status
    );
    operator.kill();
    emulator.put_faults(r#"{"*": {"retryAfter": 1}}"#).await;
    operator.restart();
    let rc = wait_finished(&client, &ns, "interrupted").await;
    let dispatches = emulator.dispatches(&command).await;
    (rc, dispatches)
}

#[tokio::test]
async fn killed_before_the_command_id_was_recorded_is_dispatch_interrupted() {
    let (rc, dispatches) = interrupted_dispatch("AtMostOnce").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "DispatchInterrupted".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(dispatches, 1);
}

#[tokio::test]
async fn at_least_once_dispatches_again_after_an_interrupted_dispatch() {
    let (rc, dispatches) = interrupted_dispatch("AtLeastOnce").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(dispatches, 2);
}

/// A rolling update while GitOps touches the resource: SIGTERM arrives while ARM holds its answer,
/// and a label written meanwhile moves the resourceVersion the record step was fenced on. The
/// stopping operator still records the command id (the object still shows its attempt), so its
/// successor polls the command instead of declaring it interrupted.
#[tokio::test]
async fn stopping_while_arm_answers_records_the_answer_before_exiting() {
    let (client, ns) = setup("rc-stop-dispatch").await;
    let (emulator, mut operator) = start(
        &ns,
        &[
            "--fault-ops",
            "aks.runCommand",
            "--response-delay-ms",
            "3000",
        ],
    );
    create(&client, &ns, "stopping", aks("aks1", "echo recorded")).await;
    emulator::wait_counters(&emulator, "the dispatch to reach ARM", |c| {
        c["dispatches"]["echo recorded"].as_u64() == Some(1)
    })
    .await;
    let api = Api::<kubeinvoke::api::RemoteCommand>::namespaced(client.clone(), &ns);
    api.patch(
        "stopping",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {"touched-by": "gitops"}}})),
    )
    .await
    .expect("label the RemoteCommand");
    assert!(
        operator.terminate(),
        "the operator did not stop cleanly on SIGTERM:\n{}",
        operator.logs()
    );
    let rc = rcmd::get(&client, &ns, "stopping").await;
    assert!(
        rc.status.as_ref().is_some_and(|s| s.command_id.is_some()),
        "the stopped operator left no command id: {:?}\n{}",
        rc.status,
        operator.logs()
    );
    operator.restart();
    let rc = wait_finished(&client, &ns, "stopping").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(emulator.dispatches("echo recorded").await, 1);
}

#[tokio::test]
async fn reapplying_the_same_spec_never_runs_it_again() {
    let (client, ns) = setup("rc-reapply").await;
    let (emulator, mut operator) = start(&ns, &[]);
    let manifest = json!({"apiVersion": "kubeinvoke.io/v1alpha1", "kind": "RemoteCommand",
        "metadata": {"name": "once", "namespace": ns}, "spec": aks("aks1", "echo only-once")});
    let apply =
        || support::Cluster::get().kubectl_stdin(&["apply", "-f", "-"], &manifest.to_string());
    assert!(apply().status.success());
    wait_finished(&client, &ns, "once").await;
    // A GitOps re-apply and an operator restart; a later command proves the operator has
    // processed everything it listed at start-up.
    assert!(apply().status.success());
    operator.restart();
    create(&client, &ns, "sentinel", aks("aks1", "echo sentinel")).await;
    wait_finished(&client, &ns, "sentinel").await;
    assert_eq!(emulator.dispatches("echo only-once").await, 1);
    assert_eq!(
        rcmd::get(&client, &ns, "once").await.metadata.generation,
        Some(1)
    );
}

#[tokio::test]
async fn a_new_run_id_runs_it_again() {
    let (client, ns) = setup("rc-runid").await;
    let (emulator, _operator) = start(&ns, &[]);
    create(&client, &ns, "again", aks("aks1", "echo run")).await;
    let first = wait_finished(&client, &ns, "again").await;
    let api = Api::<kubeinvoke::api::RemoteCommand>::namespaced(client.clone(), &ns);
    let patch = json!({"spec": {"runId": "second"}});
    api.patch(
        "again",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let second = rcmd::wait_for(&client, &ns, "again", "the second run to finish", |rc| {
        rc.status.as_ref().is_some_and(|s| {
            s.run_id.as_deref() == Some("second") && s.phase.is_some_and(|p| p.is_terminal())
        })
    })
    .await;
    assert_eq!(outcome(&second).1, "Completed");
    assert_ne!(
        first.status.unwrap().command_id,
        second.status.unwrap().command_id
    );
    assert_eq!(emulator.dispatches("echo run").await, 2);
}

#[tokio::test]
async fn deleting_a_running_resource_stops_polling() {
    let (client, ns) = setup("rc-delete").await;
    let emulator = Emulator::start(
        &world(
            "          - {name: aks-forever, commandDuration: 120}\n          - {name: aks-slow, commandDuration: 4}",
            "",
        ),
        &[],
    );
    let _operator = Operator::start(&emulator, &ns, &[]);
    create(&client, &ns, "doomed", aks("aks-forever", "echo doomed")).await;
    let rc = rcmd::wait_for(&client, &ns, "doomed", "a commandId", |rc| {
        rc.status.as_ref().is_some_and(|s| s.command_id.is_some())
    })
    .await;
    let command_id = rc.status.unwrap().command_id.unwrap();
    let polls_of = |requests: serde_json::Value| {
        requests
            .as_array()
            .map(|r| {
                r.iter()
                    .filter(|r| r["path"].as_str().is_some_and(|p| p.contains(&command_id)))
                    .count()
            })
            .unwrap_or(0)
    };
    emulator::wait_counters(&emulator, "a first poll", |_| true).await;
    Api::<kubeinvoke::api::RemoteCommand>::namespaced(client.clone(), &ns)
        .delete("doomed", &Default::default())
        .await
        .unwrap();
    let at_delete = polls_of(emulator.requests().await);
    // A command that takes 4 s spans several 1 s poll intervals of the deleted one.
    create(&client, &ns, "sentinel", aks("aks-slow", "echo sentinel")).await;
    wait_finished(&client, &ns, "sentinel").await;
    let later = polls_of(emulator.requests().await);
    assert!(
        later <= at_delete + 1,
        "polling went on after deletion: {at_delete} polls then {later}"
    );
}

#[tokio::test]
async fn no_secret_reaches_logs_or_events() {
    let (client, ns) = setup("rc-secrets").await;
    let (_emulator, operator) = start(&ns, &[]);
    create(
        &client,
        &ns,
        "secretive",
        aks("aks-aad", "echo TOPSECRET-OUTPUT-4711"),
    )
    .await;
    create(
        &client,
        &ns,
        "secretive-aci",
        rcmd::aci_shell("cg1", "echo TOPSECRET-OUTPUT-4712"),
    )
    .await;
    let rc = wait_finished(&client, &ns, "secretive").await;
    assert_eq!(outcome(&rc).1, "Completed");
    let aci = wait_finished(&client, &ns, "secretive-aci").await;
    let logs = operator.logs();
    let events = events(&ns);
    assert!(
        logs.contains("dispatched"),
        "the operator logged nothing useful:\n{logs}"
    );
    // Status is readable through the aggregated `view` role; the output Secret is not. By default
    // no output reaches status (spec.output.tailBytes is opt-in).
    let statuses = serde_json::to_string(&[&rc.status, &aci.status]).unwrap();
    for (what, text) in [
        ("operator log", &logs),
        ("Events", &events),
        ("status", &statuses),
    ] {
        for secret in [
            "TOPSECRET-OUTPUT-4711",
            "TOPSECRET-OUTPUT-4712",
            emulator::CLIENT_SECRET,
            "Bearer ",
            "password",
        ] {
            assert!(
                !text.contains(secret),
                "{what} contains {secret:?}:\n{text}"
            );
        }
    }
    let _ = aks_id("x");
}

#[tokio::test]
async fn ttl_deletes_a_finished_command() {
    let (client, ns) = setup("rc-ttl").await;
    let (_emulator, _operator) = start(&ns, &[]);
    let mut spec = aks("aks1", "echo short-lived");
    spec["ttlSecondsAfterFinished"] = json!(5);
    create(&client, &ns, "short", spec).await;
    let api = Api::<kubeinvoke::api::RemoteCommand>::namespaced(client.clone(), &ns);
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    // Its output Secret is owned by it...
    let owner = support::wait_until(
        std::time::Duration::from_secs(60),
        "the output Secret",
        || {
            let secrets = secrets.clone();
            async move {
                let secret = secrets.get_opt("short-output").await.ok()??;
                secret.metadata.owner_references?.into_iter().next()
            }
        },
    )
    .await;
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("RemoteCommand", "short")
    );
    assert_eq!(owner.controller, Some(true));
    support::wait_until(
        std::time::Duration::from_secs(60),
        "the finished command to be deleted",
        || {
            let api = api.clone();
            async move {
                api.get_opt("short")
                    .await
                    .ok()
                    .and_then(|o| o.is_none().then_some(()))
            }
        },
    )
    .await;
    // ...so the node's garbage collector (kube-controller-manager) removes it after the TTL.
    support::wait_until(
        std::time::Duration::from_secs(60),
        "the garbage collector to delete the output Secret",
        || {
            let secrets = secrets.clone();
            async move { matches!(secrets.get_opt("short-output").await, Ok(None)).then_some(()) }
        },
    )
    .await;
}

#[tokio::test]
async fn aci_session_cut_by_a_restart_is_session_interrupted() {
    let (client, ns) = setup("rc-aci-cut").await;
    let (emulator, mut operator) = start(&ns, &[]);
    create(
        &client,
        &ns,
        "cut",
        rcmd::aci_shell("cg1", "sleep 30; echo too-late"),
    )
    .await;
    emulator::wait_counters(&emulator, "the exec session to start", |c| {
        c["execSessions"]["/bin/sh"].as_u64() == Some(1)
    })
    .await;
    operator.restart();
    let rc = wait_finished(&client, &ns, "cut").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "SessionInterrupted".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(
        emulator.counters().await["execSessions"]["/bin/sh"].as_u64(),
        Some(1),
        "AtMostOnce must not run it again"
    );
}

/// A RemoteCommand applied before its credential Secret and its file ConfigMap (GitOps, no fixed
/// order) waits Pending with the reason, then runs within seconds of each appearing.
#[tokio::test]
async fn a_command_created_before_its_references_converges() {
    let client = support::Cluster::get().client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "rc-late").await;
    let (_emulator, _operator) = start(&ns, &[]);
    let mut spec = aks("aks1", "cat late.txt");
    spec["credentialRef"] = json!({"name": "late-credentials"});
    spec["files"] = json!([{"configMapRef": {"name": "late-files"}}]);
    create(&client, &ns, "late", spec).await;
    let waiting = |reason: &'static str| {
        move |rc: &kubeinvoke::api::RemoteCommand| {
            rc.status.as_ref().is_some_and(|s| {
                s.phase == Some(kubeinvoke::api::Phase::Pending)
                    && s.reason.as_deref() == Some(reason)
            })
        }
    };
    rcmd::wait_for(
        &client,
        &ns,
        "late",
        "Pending on its credential",
        waiting("CredentialNotFound"),
    )
    .await;
    support::credential_secret(&client, &ns, "late-credentials").await;
    let within = std::time::Duration::from_secs(10);
    let api = Api::<kubeinvoke::api::RemoteCommand>::namespaced(client.clone(), &ns);
    let reason_is = |reason: &'static str| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move {
                let rc = api.get("late").await.ok()?;
                (rc.status?.reason.as_deref() == Some(reason)).then_some(())
            }
        }
    };
    support::wait_until(
        within,
        "FileNotFound within 10 s of the credential",
        reason_is("FileNotFound"),
    )
    .await;
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "late-files"}, "data": {"late.txt": "made it\n"}}),
    )
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    support::wait_until(
        within,
        "Completed within 10 s of the ConfigMap",
        reason_is("Completed"),
    )
    .await;
    let rc = rcmd::get(&client, &ns, "late").await;
    assert_eq!(output(&client, &ns, &rc).await, "made it\n");
    let events = events(&ns);
    assert!(
        events.contains("CredentialNotFound") && events.contains("FileNotFound"),
        "{events}"
    );
}

/// GitOps re-creates a RemoteCommand that ttlSecondsAfterFinished deleted: the new one runs whether
/// or not the garbage collector removed the old output Secret yet (when it has not, the Secret is
/// taken over: `controllers::owned` unit tests pin that rule down without the collector's timing).
#[tokio::test]
async fn a_name_can_be_reused_after_the_ttl_deleted_the_command() {
    let (client, ns) = setup("rc-reuse").await;
    let (_emulator, _operator) = start(&ns, &[]);
    let api = Api::<kubeinvoke::api::RemoteCommand>::namespaced(client.clone(), &ns);
    for round in 0..2 {
        let mut spec = aks("aks1", &format!("echo round {round}"));
        spec["ttlSecondsAfterFinished"] = json!(5);
        create(&client, &ns, "nightly", spec).await;
        let rc = wait_finished(&client, &ns, "nightly").await;
        assert_eq!(
            outcome(&rc),
            ("Succeeded".into(), "Completed".into()),
            "round {round}: {:?}",
            rc.status
        );
        // The output is this round's, in a Secret this object controls.
        assert_eq!(output(&client, &ns, &rc).await, format!("round {round}\n"));
        let secret = Api::<Secret>::namespaced(client.clone(), &ns)
            .get("nightly-output")
            .await
            .expect("output Secret");
        let owners = secret.metadata.owner_references.unwrap_or_default();
        assert_eq!(
            owners.iter().map(|o| o.uid.as_str()).collect::<Vec<_>>(),
            [rc.metadata.uid.as_deref().unwrap_or_default()],
            "round {round}"
        );
        support::wait_until(
            std::time::Duration::from_secs(30),
            "the TTL to delete nightly",
            || {
                let api = api.clone();
                async move { matches!(api.get_opt("nightly").await, Ok(None)).then_some(()) }
            },
        )
        .await;
    }
}

/// Any 2xx to a run command is an acceptance: an answer that cannot be followed (no Location) ends
/// the run as ResultUnavailable under either policy, and the command is never sent again.
#[tokio::test]
async fn an_unfollowable_acceptance_is_never_sent_again() {
    let (client, ns) = setup("rc-2xx").await;
    let (emulator, _operator) = start(&ns, &[]);
    for policy in ["AtMostOnce", "AtLeastOnce"] {
        let command = format!("echo accepted-{policy}");
        let mut spec = aks("aks-nolocation", &command);
        spec["dispatchPolicy"] = json!(policy);
        let name = policy.to_ascii_lowercase();
        create(&client, &ns, &name, spec).await;
        let rc = wait_finished(&client, &ns, &name).await;
        assert_eq!(
            outcome(&rc),
            ("Failed".into(), "ResultUnavailable".into()),
            "{policy}: {:?}",
            rc.status
        );
        let message = rc.status.and_then(|s| s.message).unwrap_or_default();
        assert!(message.contains("may have run"), "{message}");
        assert_eq!(emulator.dispatches(&command).await, 1, "{policy}");
    }
}

/// Real AKS reports a command pod that did not start as the POST's error: the command did not
/// run, so it is dispatched again up to maxAttempts, then fails as CommandDidNotStart.
#[tokio::test]
async fn did_not_start_on_the_post_is_retried_then_command_did_not_start() {
    let (client, ns) = setup("rc-post-dns").await;
    let (emulator, _operator) = start(&ns, &[]);
    create(
        &client,
        &ns,
        "flaky",
        aks("aks-flaky-post", "echo second-time-lucky"),
    )
    .await;
    let rc = wait_finished(&client, &ns, "flaky").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(rc.status.as_ref().unwrap().attempts, Some(2));
    assert_eq!(emulator.dispatches("echo second-time-lucky").await, 1);

    let mut spec = aks("aks-never-post", "echo never");
    spec["maxAttempts"] = json!(3);
    create(&client, &ns, "never", spec).await;
    let rc = wait_finished(&client, &ns, "never").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "CommandDidNotStart".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(rc.status.as_ref().unwrap().attempts, Some(3));
    let events = events(&ns);
    assert!(events.contains("CommandDidNotStart"), "{events}");
}

/// ACI cuts exec sessions after 10-15 minutes whatever the client asks (the emulator's cap is set to
/// 2 s here): a shell-mode run cut before its end marker is SessionInterrupted naming that limit,
/// with the output so far, never a normal finish; status.warnings and the Dispatched Event warned
/// about the timeout.
#[tokio::test]
async fn aci_session_cut_by_the_service_limit_is_session_interrupted() {
    let (client, ns) = setup("rc-aci-cap").await;
    let (emulator, _operator) = start(&ns, &["--aci-session-cap-seconds", "2"]);
    let mut spec = rcmd::aci_shell(
        "cg1",
        "echo started-before-the-cut; sleep 20; echo too-late",
    );
    spec["timeoutSeconds"] = json!(900);
    create(&client, &ns, "capped", spec).await;
    let rc = wait_finished(&client, &ns, "capped").await;
    let status = rc.status.clone().unwrap();
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "SessionInterrupted".into()),
        "{status:?}"
    );
    let message = status.message.clone().unwrap_or_default();
    assert!(message.contains("10-15 minutes"), "{message}");
    let out = output(&client, &ns, &rc).await;
    assert!(out.contains("started-before-the-cut"), "{out:?}");
    assert!(!out.contains("too-late"), "{out:?}");
    let events = events(&ns);
    assert!(
        events.contains("longer than Azure Container Instances keeps an exec session open"),
        "{events}"
    );
    assert!(
        status
            .warnings
            .iter()
            .any(|w| w.contains("longer than Azure Container Instances keeps an exec session open")),
        "the warning is in status: {:?}",
        status.warnings
    );
    assert_eq!(
        emulator.counters().await["execSessions"]["/bin/sh"].as_u64(),
        Some(1)
    );
}

/// A failure before anything reached the container (here: Entra ID failing every token request)
/// is retried like a refused AKS dispatch, not ended as an interrupted session; the attempt does
/// not count and the command runs once.
#[tokio::test]
async fn aci_failure_before_the_session_started_is_retried() {
    let (client, ns) = setup("rc-aci-token").await;
    let (emulator, _operator) = start(&ns, &[]);
    emulator
        .put_faults(r#"{"entra.token": {"error500Rate": 1.0}}"#)
        .await;
    create(
        &client,
        &ns,
        "retried",
        rcmd::aci_shell("cg1", "echo after-the-outage"),
    )
    .await;
    rcmd::wait_for(
        &client,
        &ns,
        "retried",
        "Pending while Entra ID fails",
        |rc| {
            rc.status.as_ref().is_some_and(|s| {
                s.phase == Some(kubeinvoke::api::Phase::Pending)
                    && s.reason.as_deref() == Some("Retrying")
            })
        },
    )
    .await;
    emulator.put_faults("{}").await;
    let rc = wait_finished(&client, &ns, "retried").await;
    let status = rc.status.clone().unwrap();
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{status:?}"
    );
    assert_eq!(status.attempts, Some(1), "{status:?}");
    assert_eq!(output(&client, &ns, &rc).await, "after-the-outage\n");
    assert_eq!(
        emulator.counters().await["execSessions"]["/bin/sh"].as_u64(),
        Some(1)
    );
}

/// AtLeastOnce sends an interrupted dispatch again — but never more than `maxAttempts` times in
/// all: ARM failing every runCommand with a 500 (outcome unknown each time) ends the run as
/// DispatchInterrupted after two attempts.
#[tokio::test]
async fn at_least_once_re_dispatch_is_bounded_by_max_attempts() {
    let (client, ns) = setup("rc-bounded").await;
    let (emulator, _operator) = start(&ns, &[]);
    emulator
        .put_faults(r#"{"aks.runCommand": {"error500Rate": 1.0}}"#)
        .await;
    let mut spec = aks("aks1", "echo bounded");
    spec["dispatchPolicy"] = json!("AtLeastOnce");
    spec["maxAttempts"] = json!(2);
    create(&client, &ns, "bounded", spec).await;
    let rc = wait_finished(&client, &ns, "bounded").await;
    let status = rc.status.clone().unwrap();
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "DispatchInterrupted".into()),
        "{status:?}"
    );
    assert_eq!(status.attempts, Some(2), "{status:?}");
    let message = status.message.unwrap_or_default();
    assert!(message.contains("maxAttempts (2)"), "{message}");
}

/// A run asked for while no operator ran starts when one comes back (as a Job would) — unless
/// its `startingDeadlineSeconds` passed meanwhile: then it fails as StartingDeadlineExceeded and is
/// never sent.
#[tokio::test]
async fn a_run_past_its_starting_deadline_never_starts() {
    let (client, ns) = setup("rc-late-start").await;
    let emulator = Emulator::start(&world(EXTRA, ""), &[]);
    let mut late = aks("aks1", "echo too-late-to-start");
    late["startingDeadlineSeconds"] = json!(3);
    create(&client, &ns, "late", late).await;
    let mut patient = aks("aks1", "echo still-wanted");
    patient["startingDeadlineSeconds"] = json!(600);
    create(&client, &ns, "patient", patient).await;
    let asked = std::time::Instant::now();
    support::wait_until(
        std::time::Duration::from_secs(10),
        "the starting deadline to pass with no operator",
        || async { (asked.elapsed() > std::time::Duration::from_secs(4)).then_some(()) },
    )
    .await;
    let _operator = Operator::start(&emulator, &ns, &[]);
    let rc = wait_finished(&client, &ns, "late").await;
    assert_eq!(
        outcome(&rc),
        ("Failed".into(), "StartingDeadlineExceeded".into()),
        "{:?}",
        rc.status
    );
    let rc = wait_finished(&client, &ns, "patient").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(emulator.dispatches("echo too-late-to-start").await, 0);
}

/// Commands are dispatched in the order they were created (within the first token's race), even with few places for the
/// namespace's reconciles and a write budget of 3 a second: a run turned away waits with a ticket
/// and is woken oldest first (it drew lots every 2 s before), and ARM's budget serves the oldest
/// command first. The operator talks HTTP/2 to ARM: one connection carries the whole run.
#[tokio::test]
async fn commands_are_dispatched_in_the_order_they_were_created() {
    let (client, ns) = setup("rc-order").await;
    let emulator = Emulator::start(&world(EXTRA, ""), &[]);
    let _operator = Operator::start(
        &emulator,
        &ns,
        &[
            "--arm-write-burst",
            "1",
            "--arm-write-rate",
            "3",
            "--max-reconciles-per-namespace",
            "3",
        ],
    );
    let names: Vec<String> = (0..24).map(|i| format!("c-{i:02}")).collect();
    for name in &names {
        create(&client, &ns, name, aks("aks1", "true")).await;
    }
    let mut correlation = Vec::new();
    for name in &names {
        let rc = wait_finished(&client, &ns, name).await;
        assert_eq!(outcome(&rc), ("Succeeded".into(), "Completed".into()));
        correlation.push(rc.status.unwrap().correlation_id.expect("correlationId"));
    }
    let log = emulator.requests().await;
    let accepted = |id: &str| -> k8s_openapi::jiff::Timestamp {
        let entry = log
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["operation"] == "aks.runCommand" && e["status"] == 202 && e["correlationId"] == id
            })
            .unwrap_or_else(|| panic!("no accepted runCommand with correlation id {id}"));
        entry["time"].as_str().unwrap().parse().unwrap()
    };
    let times: Vec<_> = correlation.iter().map(|id| accepted(id)).collect();
    // The largest time by which a command was overtaken by one created after it.
    let mut inversion = std::time::Duration::ZERO;
    for (i, earlier) in times.iter().enumerate() {
        for later in &times[i + 1..] {
            if later < earlier {
                let by = std::time::Duration::try_from(earlier.duration_since(*later)).unwrap();
                inversion = inversion.max(by);
            }
        }
    }
    // The first token goes to whichever run asks first while the first one still fetches its
    // Entra token: a few tokens (3 a second) of slack. Drawing lots, it was 14.7 s.
    assert!(
        inversion <= std::time::Duration::from_secs(2),
        "a command was overtaken by {inversion:?}: {times:?}"
    );
    let counters = emulator.counters().await;
    assert_eq!(
        counters["http2Connections"], counters["tlsHandshakes"],
        "{counters}"
    );
    assert!(
        counters["tlsHandshakes"].as_u64().unwrap() <= 3,
        "the operator and this test's client: {counters}"
    );
}
