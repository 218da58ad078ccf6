//! Tenants are adversaries of everyone's share of the operator: attacks on its memory, on its start
//! and on the reach of its permissions, against the operator as users install it (the chart on the
//! node, its pods with their own ServiceAccount, the memory limit of the chart). Each test is one
//! attack, named for it, and fails if the defence is removed.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kubeinvoke::api::RemoteCommand;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use support::Cluster;
use support::emulator::{Emulator, world};
use support::rcmd::{self, aks, create, outcome, wait_finished};
use support::release::{Installed, container_pid, restarts};

/// One release's pods at a time on the 2-core node.
static NODE: Mutex<()> = Mutex::const_new(());

/// The chart's memory limit of the operator container (values.yaml `resources.limits.memory`).
const MEMORY_LIMIT: u64 = 256 * 1024 * 1024;

/// Runs naming ConfigMaps of a megabyte each (and selecting a two-byte key of each), many at once,
/// while ARM's write budget lets one run out every 5 s: an operator that reads them all and keeps
/// them until each run's turn comes holds hundreds of megabytes — past the chart's memory limit it
/// crashes for every tenant. Reads are paid for from a shared budget of which one namespace gets a
/// quarter, and whole objects count against a run's limit: the ten runs naming eight such
/// ConfigMaps end `ContextTooLarge` without a dispatch, the sixty naming six wait their turn
/// (memory, then ARM), the operator never restarts and stays under its limit, and a victim's run in
/// another namespace finishes within its 60 s.
#[tokio::test]
async fn configmaps_of_a_mebibyte_cannot_exhaust_the_operators_memory() {
    let _turn = NODE.lock().await;
    let (admin, victim, attacker, emulator, op) = two_tenants(
        "mem-victim",
        "mem-attacker",
        "arm: {writeBurst: 1, writeRate: 0.2}\n",
    )
    .await;
    let configmaps = Api::<ConfigMap>::namespaced(admin.clone(), &attacker);
    for i in 0..8 {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("big-{i}")},
            "data": {"big": "x".repeat(1_000_000), "small": "hi"},
        }))
        .unwrap();
        configmaps
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }
    let files = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"configMapRef": {"name": format!("big-{i}"), "items": [{"key": "small", "path": format!("small-{i}")}]}}))
            .collect()
    };
    let runs = [("over", 10, 8), ("heavy", 60, 6)];
    for (name, count, sources) in runs {
        for i in 0..count {
            let mut spec = aks("aks1", &format!("echo {name}"));
            spec["files"] = files(sources);
            spec["timeoutSeconds"] = json!(600);
            create(&admin, &attacker, &format!("{name}-{i}"), spec).await;
        }
    }
    let mut spec = aks("aks1", "echo victim");
    spec["timeoutSeconds"] = json!(60);
    create(&admin, &victim, "victim", spec).await;

    let rc = wait_finished(&admin, &victim, "victim").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{}",
        rcmd::message(&rc)
    );
    // Each of them must first read its sources, paid from the namespace's quarter of the budget
    // that the sixty heavy runs share too (released one per ARM write, every 5 s). When the heavy
    // runs took the dispatch line first (up to 64 while ARM's budget looked roomy), an `over` run
    // that gave up waiting for memory gets back in only when fewer than 8 wait there: (60 − 8) ×
    // 5 s, about 260 s, is the worst case (seen: 278 s); well inside their own timeout.
    let runs = Api::<RemoteCommand>::namespaced(admin.clone(), &attacker);
    let over = support::wait_until(
        std::time::Duration::from_secs(420),
        "every over-* run in a terminal phase",
        || async {
            let all = runs.list(&Default::default()).await.ok()?;
            let over: Vec<RemoteCommand> = all
                .items
                .into_iter()
                .filter(|rc| rc.name_any().starts_with("over-"))
                .collect();
            let ended = over.iter().all(|rc| {
                rc.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p.is_terminal())
            });
            (over.len() == 10 && ended).then_some(over)
        },
    )
    .await;
    for rc in &over {
        assert_eq!(
            outcome(rc),
            ("Failed".into(), "ContextTooLarge".into()),
            "{}: {}",
            rc.name_any(),
            rcmd::message(rc)
        );
        assert!(rcmd::message(rc).contains("whole objects"));
    }
    assert_eq!(emulator.dispatches("echo over").await, 0);
    // Every heavy run has been looked at: it holds its files while it waits for ARM (after 5 s
    // status says so), or it waits for memory (after 10 s status says so).
    for i in 0..60 {
        rcmd::wait_for(&admin, &attacker, &format!("heavy-{i}"), "a status", |rc| {
            rc.status.as_ref().and_then(|s| s.reason.as_ref()).is_some()
        })
        .await;
    }
    // The budget (48 MiB by default) keeps the operator far below its limit (52 MiB seen); without
    // it this attack takes it to the limit (253 MiB seen).
    assert_unharmed(&op, MEMORY_LIMIT / 2).await;
    // The heavy runs would go on for minutes: they go.
    delete_namespace(&admin, &attacker).await;
}

/// Three hundred RemoteCommands near what the API server and the schema allow (250 kB of
/// annotations, a 60 kB command, eight file sources of 32 long paths each): an operator that lists
/// them in one page and caches them whole crash-loops at its memory limit and never becomes Ready,
/// for every tenant. The cache keeps no labels or annotations and the list comes in pages: a fresh
/// install becomes Ready, never restarts, and stays under its limit.
#[tokio::test]
async fn three_hundred_near_limit_objects_cannot_keep_the_operator_from_starting() {
    let _turn = NODE.lock().await;
    let (admin, victim) = rcmd::setup("bulk-victim").await;
    // No credential in the bulk namespace: its runs wait (backing off) for one.
    let bulk = support::namespace(&admin, "bulk").await;
    let api = Api::<RemoteCommand>::namespaced(admin.clone(), &bulk);
    let files: Vec<Value> = (0..8)
        .map(|i| {
            let items: Vec<Value> = (0..32)
                .map(
                    |j| json!({"key": format!("k{j}"), "path": format!("{}/{j}", "p".repeat(240))}),
                )
                .collect();
            json!({"configMapRef": {"name": format!("cm-{i}"), "items": items}})
        })
        .collect();
    let mut spec = aks("aks1", &"x".repeat(60_000));
    spec["files"] = json!(files);
    let template: RemoteCommand = serde_json::from_value(json!({
        "apiVersion": "kubeinvoke.io/v1alpha1", "kind": "RemoteCommand",
        "metadata": {"name": "bulk", "annotations": {"pad": "a".repeat(250_000)}},
        "spec": spec,
    }))
    .unwrap();
    for chunk in (0..300).collect::<Vec<_>>().chunks(10) {
        let creates = chunk.iter().map(|i| {
            let mut rc = template.clone();
            rc.metadata.name = Some(format!("bulk-{i}"));
            let api = api.clone();
            async move { api.create(&PostParams::default(), &rc).await }
        });
        for created in futures::future::join_all(creates).await {
            created.expect("create a near-limit RemoteCommand");
        }
    }
    let emulator = Emulator::start(&world("", ""), &[]);
    let op = Installed::install_with(
        &admin,
        &emulator,
        &victim,
        &format!("watchNamespaces: [\"{bulk}\"]\n"),
    )
    .await;
    rcmd::create(&admin, &victim, "victim", aks("aks1", "echo victim")).await;
    let rc = wait_finished(&admin, &victim, "victim").await;
    assert_eq!(outcome(&rc), ("Succeeded".into(), "Completed".into()));
    // The bulk runs are served too: they wait for their credential.
    rcmd::wait_for(&admin, &bulk, "bulk-299", "CredentialNotFound", |rc| {
        rc.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("CredentialNotFound")
    })
    .await;
    // And every one of them, not only the youngest: a look that finds nothing new writes nothing,
    // so the runs already waiting do not take the turns of those not looked at yet.
    support::wait_until(
        std::time::Duration::from_secs(60),
        "every bulk run waiting for its credential",
        || async {
            let runs = api.list(&Default::default()).await.ok()?;
            let served = runs.items.iter().filter(|rc| {
                rc.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("CredentialNotFound")
            });
            (served.count() == 300).then_some(())
        },
    )
    .await;
    assert_unharmed(&op, MEMORY_LIMIT).await;
    // Later tests may watch every namespace: the bulk goes.
    delete_namespace(&admin, &bulk).await;
}

/// The recommended install lists the tenant namespaces: the operator's ServiceAccount gets a Role
/// in each and nothing cluster-wide. Asked of the API server's own authorizer, it cannot mint a
/// token or read a Secret in kube-system or in an unlisted namespace (nor list Secrets anywhere);
/// it serves the listed namespaces and never touches a run in an unlisted one.
#[tokio::test]
async fn a_namespace_outside_the_list_is_out_of_the_operators_reach() {
    let _turn = NODE.lock().await;
    let (admin, first, second, emulator, op) = two_tenants("listed", "listed", "").await;
    let (_, outside) = rcmd::setup("unlisted").await;
    let sa = op.chart.service_account_name(&op.release);
    let who = format!("system:serviceaccount:{}:{sa}", op.release.namespace);
    // `serviceaccounts/token` is the `token` subresource (kubectl reads `a/b` as a name).
    let can = |verb: &str, resource: &str, ns: &str| -> bool {
        let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
        let mut args = vec!["auth", "can-i", verb, resource, "-n", ns, "--as", &who];
        let sub = format!("--subresource={sub}");
        if resource == "serviceaccounts" && sub != "--subresource=" {
            args.push(&sub);
        }
        let out = Cluster::get().kubectl(&args);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    for ns in [&first, &second] {
        assert!(can("create", "serviceaccounts/token", ns), "token in {ns}");
        assert!(can("get", "secrets", ns), "Secret in {ns}");
        assert!(!can("list", "secrets", ns), "Secrets are never listed");
    }
    for ns in ["kube-system", outside.as_str(), "default"] {
        assert!(
            !can("create", "serviceaccounts/token", ns),
            "the operator may mint tokens in {ns}"
        );
        assert!(
            !can("get", "secrets", ns),
            "the operator may read Secrets in {ns}"
        );
    }
    for ns in [&outside, &first, &second] {
        create(&admin, ns, "hello", aks("aks1", &format!("echo {ns}"))).await;
    }
    for ns in [&first, &second] {
        let rc = wait_finished(&admin, ns, "hello").await;
        assert_eq!(outcome(&rc), ("Succeeded".into(), "Completed".into()));
    }
    let untouched = rcmd::get(&admin, &outside, "hello").await;
    assert_eq!(
        untouched.status.unwrap_or_default(),
        Default::default(),
        "a run outside the list was touched"
    );
    assert_eq!(emulator.dispatches(&format!("echo {outside}")).await, 0);
    assert_unharmed(&op, MEMORY_LIMIT).await;
}

/// Two namespaces act as one Azure principal (a platform's shared deployment identity, here the
/// same credential in both), whose ARM write budget is one request per 5 s. One namespace asks
/// for twelve runs at once; the other for one, a moment later. The budget's tokens go round the
/// namespaces waiting: the victim's run goes out second or third, not thirteenth, and finishes
/// within its 30 s — in a line in order of arrival it would wait about a minute.
#[tokio::test]
async fn a_namespace_flooding_a_shared_identity_cannot_queue_up_the_others() {
    let _turn = NODE.lock().await;
    let (admin, victim, flood, emulator, _op) = two_tenants(
        "fair-victim",
        "fair-flood",
        "arm: {writeBurst: 1, writeRate: 0.2}\n",
    )
    .await;
    for i in 0..12 {
        let mut spec = aks("aks1", "echo flood");
        spec["timeoutSeconds"] = json!(600);
        create(&admin, &flood, &format!("flood-{i}"), spec).await;
    }
    // The flood holds the budget: its first run went out, the others wait in line.
    support::wait_until(
        std::time::Duration::from_secs(30),
        "the flood's first dispatch",
        || async { (emulator.dispatches("echo flood").await >= 1).then_some(()) },
    )
    .await;
    let mut spec = aks("aks1", "echo victim");
    spec["timeoutSeconds"] = json!(30);
    create(&admin, &victim, "victim", spec).await;
    let rc = wait_finished(&admin, &victim, "victim").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{}",
        rcmd::message(&rc)
    );
    assert!(
        emulator.dispatches("echo flood").await < 12,
        "the victim was served last"
    );
    delete_namespace(&admin, &flood).await;
}

/// Two tenant namespaces with the credential Secret (`<victim>` and `<other>` prefixes), an
/// emulator, and the chart installed watching both, with more `values` (YAML).
async fn two_tenants(
    victim: &str,
    other: &str,
    values: &str,
) -> (kube::Client, String, String, Emulator, Installed) {
    let (admin, victim) = rcmd::setup(victim).await;
    let (_, other) = rcmd::setup(other).await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let op = Installed::install_with(
        &admin,
        &emulator,
        &victim,
        &format!("watchNamespaces: [\"{other}\"]\n{values}"),
    )
    .await;
    (admin, victim, other, emulator, op)
}

/// Deletes a namespace whose runs would otherwise go on after the test (or be listed by later
/// tests that watch every namespace).
async fn delete_namespace(admin: &kube::Client, ns: &str) {
    Api::<Namespace>::all(admin.clone())
        .delete(ns, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete namespace {ns}: {e}"));
}

/// The release's pods never restarted, and the leader's peak resident memory (its process on the
/// node) stayed under `bound`; the figure is printed.
async fn assert_unharmed(op: &Installed, bound: u64) {
    let leader = op.leader().await;
    let pods = op.live_pods().await;
    for pod in &pods {
        assert_eq!(
            restarts(pod),
            0,
            "{} restarted:\n{}",
            pod.name_any(),
            op.logs()
        );
    }
    let pod = pods
        .iter()
        .find(|p| p.name_any() == leader)
        .expect("the leader among the pods");
    let pid = container_pid(pod);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    println!("operator peak resident memory: {} MiB", peak_kib / 1024);
    assert!(
        peak_kib * 1024 < bound,
        "peak {peak_kib} KiB, more than {} MiB",
        bound >> 20
    );
}
