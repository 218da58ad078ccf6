//! What only a real node can prove: the operator image installed with the Helm chart runs as two
//! pods (probes, leader election, the container's security context at run time, its own
//! ServiceAccount token under the chart's RBAC), hands over without running a command twice when
//! its leader pod is deleted or the release is upgraded, and the garbage collector removes what the
//! operator owns. Also the emulator's AKS, which runs commands in pods as AKS does.
//!
//! The chart-installed scenarios take turns (one [`NODE`] lock): a 2-core node runs one release's
//! pods and 50 commands at a time comfortably, not three.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use kubeinvoke::api::{KubeconfigExport, RemoteCommand};
use serde_json::json;
use tokio::sync::Mutex;

use support::emulator::{Emulator, world};
use support::operator::Operator;
use support::release::{Installed, LEASE_SECONDS, container_pid, is_ready};
use support::{Cluster, kcx, rcmd, wait_until};

static NODE: Mutex<()> = Mutex::const_new(());

/// A world whose `aks-slow` cluster takes `seconds` per command (host processes: the node could not
/// start 100 command pods quickly, and these tests are about the operator).
fn slow_world(seconds: u32) -> String {
    world(
        &format!("          - {{name: aks-slow, commandDuration: {seconds}}}"),
        "",
    )
}

#[tokio::test]
async fn chart_pods_are_ready_secure_and_work_with_their_own_token() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("node-chart").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let op = Installed::install(&admin, &emulator, &ns).await;

    // Probes: both pods Running and Ready (install waited for it); one of them leads.
    let pods = op.live_pods().await;
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(is_ready));
    let leader = op.leader().await;
    let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    assert!(
        names.contains(&leader),
        "the Lease holder {leader} is not one of the pods {names:?}"
    );

    // The security context holds at run time, seen from the node: uid/gid 65532, no capabilities,
    // no new privileges, a read-only root filesystem.
    for pod in &pods {
        let pid = container_pid(pod);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        };
        assert_eq!(field("Uid:"), vec!["65532"; 4], "{}", pod.name_any());
        assert_eq!(field("Gid:"), vec!["65532"; 4], "{}", pod.name_any());
        assert_eq!(field("CapEff:"), vec!["0000000000000000"]);
        assert_eq!(field("NoNewPrivs:"), vec!["1"]);
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
        let root_options = mounts
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() > 5 && f[4] == "/")
            .map(|f| f[5].to_string())
            .next_back()
            .expect("a root mount");
        assert!(
            root_options.split(',').any(|o| o == "ro"),
            "{}: the root filesystem is mounted {root_options}",
            pod.name_any()
        );
    }

    // The full scenario with the chart's ServiceAccount token: a RemoteCommand and a
    // KubeconfigExport; only the leader acts (it reports the Events).
    rcmd::create(
        &admin,
        &ns,
        "hello",
        rcmd::aks("aks1", "echo hello from a pod"),
    )
    .await;
    let rc = rcmd::wait_finished(&admin, &ns, "hello").await;
    assert_eq!(
        rcmd::outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}\n{}",
        rc.status,
        op.logs()
    );
    assert_eq!(rcmd::output(&admin, &ns, &rc).await, "hello from a pod\n");
    // Events are published after the status write: wait for the run's Completed Event, then look
    // at who reported every Event of the namespace.
    let reporters = wait_until(Duration::from_secs(30), "the Completed Event", || async {
        let text = Cluster::get().kubectl_ok(&[
            "get",
            "events.events.k8s.io",
            "-n",
            &ns,
            "-o",
            "jsonpath={range .items[*]}{.reason} {.reportingInstance}{\"\\n\"}{end}",
        ]);
        text.lines()
            .any(|l| l.starts_with("Completed "))
            .then_some(text)
    })
    .await;
    let instances: BTreeSet<&str> = reporters
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        instances,
        BTreeSet::from([leader.as_str()]),
        "Events must come from the leader only:\n{reporters}"
    );
    let exports = create_export(&admin, &ns).await;
    wait_until(Duration::from_secs(60), "export edge Ready", || {
        let exports = exports.clone();
        async move {
            let k = exports.get("edge").await.ok()?;
            (kcx::condition(&k, "Ready").as_deref() == Some("True")).then_some(())
        }
    })
    .await;
    let logs = op.logs();
    assert!(
        !logs.to_ascii_lowercase().contains("forbidden"),
        "the operator was refused something:\n{logs}"
    );

    // A hostile header: every poll throttled with `Retry-After: 2^64-1`. The pods live on.
    emulator
        .put_faults(
            r#"{"aks.commandResult": {"throttleRate": 1.0, "retryAfter": "18446744073709551615"}}"#,
        )
        .await;
    rcmd::create(&admin, &ns, "hostile", rcmd::aks("aks1", "echo hostile")).await;
    support::emulator::wait_counters(
        &emulator,
        "a poll throttled with the huge Retry-After",
        |c| c["injectedFaults"].as_u64().unwrap_or(0) >= 1,
    )
    .await;
    // The answer was handled (a panic would have ended the reconcile before this log line).
    wait_until(
        Duration::from_secs(60),
        "the throttled poll handled",
        || async { op.logs().contains("polling failed; retrying").then_some(()) },
    )
    .await;
    emulator.put_faults("{}").await;
    // The same pods as before, none restarted, both still Ready.
    let after = op.live_pods().await;
    let restarts: Vec<(String, i32)> = after
        .iter()
        .map(|p| {
            let n = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|cs| cs.iter().map(|c| c.restart_count).sum())
                .unwrap_or(0);
            (p.name_any(), n)
        })
        .collect();
    assert!(
        restarts.iter().all(|(_, n)| *n == 0) && after.iter().all(is_ready),
        "restarts after a hostile Retry-After: {restarts:?}\n{}",
        op.logs()
    );
}

#[tokio::test]
async fn leader_pod_deleted_while_50_commands_run() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("node-handover").await;
    let emulator = Emulator::start(&slow_world(5), &[]);
    let op = Installed::install(&admin, &emulator, &ns).await;
    let leader = op.leader().await;

    let commands = create_commands(&admin, &ns, "handover", 50).await;
    wait_dispatched(&admin, &ns, 1).await;
    op.follow_logs(&leader);
    // A graceful delete, as a node drain or `kubectl delete pod` does: SIGTERM, then the grace period.
    op.pods_api()
        .delete(&leader, &DeleteParams::default())
        .await
        .expect("delete the leader pod");
    wait_until(
        Duration::from_secs(LEASE_SECONDS + 5),
        "a standby to take the Lease over",
        || async {
            let holder = op.holder().await?;
            let live = op.pod_names().await;
            (holder != leader && live.contains(&holder)).then_some(())
        },
    )
    .await;
    assert_all_ran_once(&admin, &ns, &emulator, &commands, &op).await;
}

#[tokio::test]
async fn helm_upgrade_rolls_the_pods_while_50_commands_run() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("node-upgrade").await;
    let emulator = Emulator::start(&slow_world(5), &[]);
    let mut op = Installed::install(&admin, &emulator, &ns).await;
    let before: BTreeSet<String> = op.pod_names().await.into_iter().collect();

    let commands = create_commands(&admin, &ns, "upgrade", 50).await;
    wait_dispatched(&admin, &ns, 1).await;
    // A changed value changes the pod template: a rolling update replaces both pods.
    op.chart.set("logFormat", json!("text"));
    op.upgrade();
    let after = op.wait_ready_pods(2).await;
    let after: BTreeSet<String> = after.iter().map(|p| p.name_any()).collect();
    assert!(
        before.is_disjoint(&after),
        "the upgrade replaced no pod: {before:?} -> {after:?}"
    );
    assert_all_ran_once(&admin, &ns, &emulator, &commands, &op).await;
}

#[tokio::test]
async fn garbage_collector_deletes_what_the_operator_owns() {
    let (admin, ns) = rcmd::setup("node-gc").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let _operator = Operator::start(&emulator, &ns, &[]);
    let secrets = Api::<Secret>::namespaced(admin.clone(), &ns);

    rcmd::create(&admin, &ns, "owned", rcmd::aks("aks1", "echo owned")).await;
    let rc = rcmd::wait_finished(&admin, &ns, "owned").await;
    let output = rc
        .status
        .and_then(|s| s.output_secret_name)
        .expect("an output Secret");
    assert!(secrets.get_opt(&output).await.unwrap().is_some());
    Api::<RemoteCommand>::namespaced(admin.clone(), &ns)
        .delete("owned", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&secrets, &output).await;

    let exports = create_export(&admin, &ns).await;
    wait_until(Duration::from_secs(60), "the export's Secret", || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("edge-kubeconfig").await.ok()? }
    })
    .await;
    exports
        .delete("edge", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&secrets, "edge-kubeconfig").await;
}

#[tokio::test]
async fn aks_commands_run_in_pods_with_aks_resources() {
    let (admin, ns) = rcmd::setup("node-aks-pod").await;
    let cluster = Cluster::get();
    let emulator = Emulator::start(
        &world(
            &format!(
                "          - {{name: aks-pod, commandPod: {{}}, {kc}}}\n          - {{name: aks-full, commandPod: {{cpuRequest: \"64\", startTimeoutSeconds: 3}}, {kc}}}",
                kc = support::emulator::kubeconfig_spec(cluster)
            ),
            "",
        ),
        &[],
    );
    let _operator = Operator::start(&emulator, &ns, &[]);
    let files: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "manifests"}, "data": {"a.txt": "alpha\n"}}),
    )
    .unwrap();
    Api::<ConfigMap>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &files)
        .await
        .unwrap();
    let mut spec = rcmd::aks(
        "aks-pod",
        "cat a.txt; pwd; kubectl get namespace default -o name; sleep 3",
    );
    spec["files"] = json!([{"configMapRef": {"name": "manifests"}}]);
    rcmd::create(&admin, &ns, "in-a-pod", spec).await;

    // While it runs, its pod in aks-command carries AKS's requests and limits.
    let pods = Api::<Pod>::namespaced(admin.clone(), "aks-command");
    let pod =
        wait_until(
            Duration::from_secs(60),
            "a command pod in aks-command",
            || {
                let pods = pods.clone();
                async move {
                    let list = pods.list(&ListParams::default()).await.ok()?;
                    list.items.into_iter().find(|p| {
                        p.spec.as_ref().is_some_and(|s| {
                            s.containers[0].env.iter().flatten().any(|e| {
                                e.value.as_deref().is_some_and(|v| v.contains("cat a.txt"))
                            })
                        })
                    })
                }
            },
        )
        .await;
    let resources = pod.spec.unwrap().containers[0].resources.clone().unwrap();
    let q = |m: &Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
             k: &str| { m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone()) };
    assert_eq!(q(&resources.requests, "cpu").as_deref(), Some("200m"));
    assert_eq!(q(&resources.requests, "memory").as_deref(), Some("500Mi"));
    assert_eq!(q(&resources.limits, "cpu").as_deref(), Some("500m"));
    assert_eq!(q(&resources.limits, "memory").as_deref(), Some("1Gi"));

    let rc = rcmd::wait_finished(&admin, &ns, "in-a-pod").await;
    assert_eq!(
        rcmd::outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(
        rcmd::output(&admin, &ns, &rc).await,
        "alpha\n/command\nnamespace/default\n"
    );
    let name = pod.metadata.name.clone().unwrap();
    wait_until(
        Duration::from_secs(30),
        "the command pod to be deleted",
        || {
            let pods = pods.clone();
            let name = name.clone();
            async move { matches!(pods.get_opt(&name).await, Ok(None)).then_some(()) }
        },
    )
    .await;

    // A pod the node cannot schedule (64 CPUs) is ARM's "did not start", from a real Pending pod.
    let mut spec = rcmd::aks("aks-full", "true");
    spec["maxAttempts"] = json!(1);
    rcmd::create(&admin, &ns, "unschedulable", spec).await;
    let rc = rcmd::wait_finished(&admin, &ns, "unschedulable").await;
    assert_eq!(
        rcmd::outcome(&rc),
        ("Failed".into(), "CommandDidNotStart".into()),
        "{:?}",
        rc.status
    );
    let message = rc.status.and_then(|s| s.message).unwrap_or_default();
    assert!(message.contains("did not start"), "{message}");
}

/// Creates KubeconfigExport `edge` (aks1's user kubeconfig into Secret `edge-kubeconfig`).
async fn create_export(admin: &Client, ns: &str) -> Api<KubeconfigExport> {
    let export: KubeconfigExport = serde_json::from_value(json!({
        "apiVersion": "kubeinvoke.io/v1alpha1",
        "kind": "KubeconfigExport",
        "metadata": {"name": "edge"},
        "spec": kcx::spec(kcx::aks("aks1", "User"), "edge-kubeconfig", "Kubeconfig"),
    }))
    .unwrap();
    let exports = Api::<KubeconfigExport>::namespaced(admin.clone(), ns);
    exports
        .create(&PostParams::default(), &export)
        .await
        .unwrap();
    exports
}

/// Creates `n` AKS commands `<prefix>-<i>` on `aks-slow`, each with a distinct command line.
async fn create_commands(client: &Client, ns: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut commands = Vec::new();
    for i in 0..n {
        let command = format!("echo {prefix}-{i}");
        rcmd::create(
            client,
            ns,
            &format!("{prefix}-{i}"),
            rcmd::aks("aks-slow", &command),
        )
        .await;
        commands.push(command);
    }
    commands
}

/// Waits until at least `n` commands of `ns` have a command id (ARM accepted them).
async fn wait_dispatched(client: &Client, ns: &str, n: usize) {
    let api = Api::<RemoteCommand>::namespaced(client.clone(), ns);
    wait_until(
        Duration::from_secs(60),
        &format!("{n} commands dispatched"),
        || {
            let api = api.clone();
            async move {
                let list = api.list(&ListParams::default()).await.ok()?;
                let dispatched = list
                    .items
                    .iter()
                    .filter(|rc| rc.status.as_ref().is_some_and(|s| s.command_id.is_some()))
                    .count();
                (dispatched >= n).then_some(())
            }
        },
    )
    .await;
}

/// Every command finished `Succeeded`, and ARM received each exactly once.
async fn assert_all_ran_once(
    client: &Client,
    ns: &str,
    emulator: &Emulator,
    commands: &[String],
    op: &Installed,
) {
    let api = Api::<RemoteCommand>::namespaced(client.clone(), ns);
    let list = wait_until(Duration::from_secs(180), "every command to finish", || {
        let api = api.clone();
        async move {
            let list = api.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .all(|rc| {
                    rc.status
                        .as_ref()
                        .and_then(|s| s.phase)
                        .is_some_and(|p| p.is_terminal())
                })
                .then_some(list.items)
        }
    })
    .await;
    let outcomes: Vec<(String, (String, String), String)> = list
        .iter()
        .map(|rc| (rc.name_any(), rcmd::outcome(rc), rcmd::message(rc)))
        .filter(|(_, o, _)| o != &("Succeeded".to_string(), "Completed".to_string()))
        .collect();
    assert!(
        outcomes.is_empty(),
        "not every command succeeded (DispatchInterrupted counts as a failure): {outcomes:?}\n{}",
        op.logs()
    );
    let mut twice = Vec::new();
    for command in commands {
        let n = emulator.dispatches(command).await;
        if n != 1 {
            twice.push((command.clone(), n));
        }
    }
    assert!(twice.is_empty(), "dispatched other than once: {twice:?}");
}

async fn wait_gone(secrets: &Api<Secret>, name: &str) {
    wait_until(
        Duration::from_secs(60),
        &format!("the garbage collector to delete Secret {name}"),
        || {
            let secrets = secrets.clone();
            let name = name.to_string();
            async move { matches!(secrets.get_opt(&name).await, Ok(None)).then_some(()) }
        },
    )
    .await;
}
