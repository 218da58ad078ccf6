//! Tenants are adversaries, against the operator as users install it (the image on the node, the
//! Helm chart, its pods running with their own projected ServiceAccount token): each test is one
//! attack, named for it, and fails if the defence is removed.
//!
//! The scenarios take turns ([`NODE`]): a 2-core node runs one release's pods at a time comfortably.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Mutex;

use support::emulator::{Emulator, TENANT, federated, wait_counters, world};
use support::helm::{Chart, Release};
use support::release::{Installed, signal};
use support::{rcmd, scratch_dir, wait_until};

static NODE: Mutex<()> = Mutex::const_new(());

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

fn restarts(pod: &k8s_openapi::api::core::v1::Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.restart_count)
        .unwrap_or(0)
}
