//! Running it like a product: metrics and health endpoints, leader election with failover, and
//! graceful shutdown — the real operator binary against kube-apiserver v1.20.2 and the emulator.

mod support;

use std::time::{Duration, Instant};

use support::emulator::{Emulator, world};
use support::operator::{Operator, sample};
use support::rcmd::{aks, create, outcome, setup, wait_finished};
use support::wait_until;

const SLOW: &str = "          - {name: aks-slow, commandDuration: 4}";

fn leader_flags(ns: &str) -> Vec<String> {
    [
        "--leader-elect",
        "--leader-election-namespace",
        ns,
        "--leader-election-lease-seconds",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn get(url: &str) -> (u16, String) {
    let resp = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

#[tokio::test]
async fn metrics_and_health_endpoints_report_the_work() {
    let (client, ns) = setup("op-metrics").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let operator = Operator::start(&emulator, &ns, &[]);
    let base = operator.http_url().await;
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    wait_until(Duration::from_secs(30), "/readyz to answer 200", || async {
        (get(&format!("{base}/readyz")).await.0 == 200).then_some(())
    })
    .await;
    create(&client, &ns, "measured", aks("aks1", "echo measured")).await;
    assert_eq!(
        outcome(&wait_finished(&client, &ns, "measured").await).1,
        "Completed"
    );
    let (status, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    for series in [
        "kubeinvoke_reconciles_total{controller=\"remote_command\"}",
        "kubeinvoke_outcomes_total{controller=\"remote_command\",reason=\"Completed\"}",
        "kubeinvoke_arm_requests_total{operation=\"ManagedClusters_RunCommand\",status=\"202\"}",
        "kubeinvoke_arm_requests_total{operation=\"ManagedClusters_GetCommandResult\",status=\"200\"}",
        "kubeinvoke_remote_commands{phase=\"Succeeded\"}",
        "kubeinvoke_reconcile_duration_seconds_count{controller=\"remote_command\"}",
        "kubeinvoke_leader",
    ] {
        let value =
            sample(&text, series).unwrap_or_else(|| panic!("/metrics lacks {series}:\n{text}"));
        assert!(value > 0.0, "{series} is {value}");
    }
    assert!(
        text.contains("kubeinvoke_arm_bucket_tokens{kind=") && !text.contains("client_id"),
        "no bucket gauge:\n{text}"
    );
}

#[tokio::test]
async fn one_leader_reconciles_and_a_standby_takes_over_without_duplicates() {
    let (client, ns) = setup("op-leader").await;
    let emulator = Emulator::start(&world(SLOW, ""), &[]);
    let flags = leader_flags(&ns);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut first = Operator::start(&emulator, &ns, &flags);
    wait_until(
        Duration::from_secs(30),
        "the first operator to lead",
        || async { first.logs().contains("became the leader").then_some(()) },
    )
    .await;
    let second = Operator::start(&emulator, &ns, &flags);
    wait_until(
        Duration::from_secs(30),
        "the second operator to wait for the lease",
        || async {
            second
                .logs()
                .contains("waiting to become the leader")
                .then_some(())
        },
    )
    .await;

    // A standby that knows the leader is ready (a rollout of several replicas completes).
    let standby = second.http_url().await;
    wait_until(
        Duration::from_secs(30),
        "the standby's /readyz to answer 200",
        || async { (get(&format!("{standby}/readyz")).await.0 == 200).then_some(()) },
    )
    .await;

    create(&client, &ns, "before", aks("aks1", "echo before")).await;
    wait_finished(&client, &ns, "before").await;
    // An in-flight command across the failover: dispatched by the first, finished by the second.
    create(&client, &ns, "across", aks("aks-slow", "echo across")).await;
    support::rcmd::wait_for(&client, &ns, "across", "a commandId", |rc| {
        rc.status.as_ref().is_some_and(|s| s.command_id.is_some())
    })
    .await;
    assert!(
        !second.logs().contains("dispatched"),
        "the standby reconciled:\n{}",
        second.logs()
    );

    first.kill();
    let killed = Instant::now();
    create(&client, &ns, "after", aks("aks1", "echo after")).await;
    wait_until(
        Duration::from_secs(30),
        "the standby to take over",
        || async { second.logs().contains("became the leader").then_some(()) },
    )
    .await;
    let takeover = killed.elapsed();
    eprintln!("standby took over {takeover:?} after the leader was killed (lease 4 s)");
    for name in ["across", "after"] {
        let rc = wait_finished(&client, &ns, name).await;
        assert_eq!(
            outcome(&rc),
            ("Succeeded".into(), "Completed".into()),
            "{name}: {:?}",
            rc.status
        );
    }
    for command in ["echo before", "echo across", "echo after"] {
        assert_eq!(
            emulator.dispatches(command).await,
            1,
            "{command} was dispatched more than once"
        );
    }
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_hands_over_the_lease() {
    let (client, ns) = setup("op-sigterm").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let flags = leader_flags(&ns);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut first = Operator::start(&emulator, &ns, &flags);
    wait_until(
        Duration::from_secs(30),
        "the first operator to lead",
        || async { first.logs().contains("became the leader").then_some(()) },
    )
    .await;
    let second = Operator::start(&emulator, &ns, &flags);
    wait_until(
        Duration::from_secs(30),
        "the second operator to wait",
        || async {
            second
                .logs()
                .contains("waiting to become the leader")
                .then_some(())
        },
    )
    .await;
    assert!(
        first.terminate(),
        "the operator did not exit cleanly on SIGTERM:\n{}",
        first.logs()
    );
    assert!(
        first.logs().contains("kubeinvoke controller stopped"),
        "{}",
        first.logs()
    );
    // The lease was released, so the standby leads without waiting for it to expire.
    wait_until(Duration::from_secs(30), "the standby to lead", || async {
        second.logs().contains("became the leader").then_some(())
    })
    .await;
    create(&client, &ns, "handover", aks("aks1", "echo handover")).await;
    assert_eq!(
        outcome(&wait_finished(&client, &ns, "handover").await).1,
        "Completed"
    );
}

/// A rolling update stops the leader with SIGTERM while an ACI exec session is open: the session
/// runs in a task of its own, and the leader, still holding the Lease, lets it end and records its
/// result before it exits — the run is not cut into `SessionInterrupted`.
#[tokio::test]
async fn sigterm_lets_an_open_exec_session_finish() {
    let (client, ns) = setup("op-sigterm-aci").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let flags = leader_flags(&ns);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut operator = Operator::start(&emulator, &ns, &flags);
    create(
        &client,
        &ns,
        "long",
        support::rcmd::aci_shell("cg1", "sleep 3; echo survived"),
    )
    .await;
    support::emulator::wait_counters(&emulator, "the exec session to connect", |c| {
        c["execSessions"]["/bin/sh"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert!(
        operator.terminate(),
        "the operator did not exit cleanly on SIGTERM:\n{}",
        operator.logs()
    );
    let rc = support::rcmd::get(&client, &ns, "long").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}\n{}",
        rc.status,
        operator.logs()
    );
    assert_eq!(support::rcmd::output(&client, &ns, &rc).await, "survived\n");
}
