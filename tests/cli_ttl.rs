//! The runs `kubectl invoke` creates expire: a finished run, its output Secret and the ConfigMaps
//! that carried its files are deleted its `--ttl` after it finished; a run still going stays,
//! whatever its TTL; nothing deleted is ever sent again.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, ListParams};
use kubeinvoke::api::RemoteCommand;
use support::cli::{code, invoke, run, stderr};
use support::emulator::{Emulator, aks_id, world};
use support::operator::Operator;
use support::rcmd::setup;
use support::wait_until;

const EXTRA: &str = "          - {name: aks-ttl, commandDuration: 0}";
/// Long enough for the test to read a finished run before it expires.
const SHORT_TTL: &str = "8s";
/// The slow run outlives the fast one's whole life, TTL and garbage collection included.
const SLOW: &str = "sleep 40; echo slow-done";

/// The ConfigMaps of `ns` whose owner is the RemoteCommand with `uid`.
async fn configmaps_of(client: &Client, ns: &str, uid: &str) -> Vec<String> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/created-by=kubectl-invoke"))
        .await
        .expect("list ConfigMaps")
        .items
        .into_iter()
        .filter(|cm| {
            cm.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .filter_map(|cm| cm.metadata.name)
        .collect()
}

#[tokio::test]
async fn a_finished_run_goes_with_its_files_after_its_ttl_and_a_running_one_stays() {
    let (client, ns) = setup("cli-ttl").await;
    let emulator = Emulator::start(&world(EXTRA, ""), &[]);
    let _operator = Operator::start(&emulator, &ns, &[]);
    let runs = Api::<RemoteCommand>::namespaced(client.clone(), &ns);
    let dir = support::scratch_dir("cli-ttl");
    std::fs::write(dir.join("a.txt"), "from a file\n").unwrap();

    // A run still going when its TTL (counted from creation) would long have passed.
    let slow = invoke(
        &ns,
        &dir,
        &[
            "aks",
            &aks_id("aks-ttl"),
            "--file",
            ".",
            "--ttl",
            "3s",
            "--no-wait",
            "-c",
            SLOW,
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&slow), 0, "{}", stderr(&slow));
    let slow_name = String::from_utf8(slow.stdout).unwrap().trim().to_string();
    let slow_rc = support::rcmd::wait_for(&client, &ns, &slow_name, "running", |rc| {
        rc.status.as_ref().is_some_and(|s| s.command_id.is_some())
    })
    .await;
    let slow_uid = slow_rc.metadata.uid.clone().unwrap();

    // A run that finishes at once, with a file and the default output.
    let fast = invoke(
        &ns,
        &dir,
        &[
            "aks",
            &aks_id("aks-ttl"),
            "--file",
            ".",
            "--ttl",
            SHORT_TTL,
            "-o",
            "json",
            "-c",
            "cat a.txt",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&fast), 0, "{}", stderr(&fast));
    let doc: serde_json::Value = serde_json::from_slice(&fast.stdout).unwrap();
    assert_eq!(doc["output"], "from a file\n");
    let name = doc["name"].as_str().unwrap().to_string();
    let rc = runs
        .get(&name)
        .await
        .expect("the finished run is there before its TTL");
    assert_eq!(rc.spec.ttl_seconds_after_finished, Some(8));
    let uid = rc.metadata.uid.clone().unwrap();
    let output = rc.status.clone().unwrap().output_secret_name.unwrap();
    let files = configmaps_of(&client, &ns, &uid).await;
    assert_eq!(files.len(), 1, "one ConfigMap carried a.txt: {files:?}");

    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    wait_until(
        Duration::from_secs(90),
        "the finished run, its output Secret and its file ConfigMap to be deleted",
        || async {
            let gone = runs.get_opt(&name).await.ok()?.is_none()
                && secrets.get_opt(&output).await.ok()?.is_none()
                && configmaps_of(&client, &ns, &uid).await.is_empty();
            gone.then_some(())
        },
    )
    .await;

    // Meanwhile the slow run stays, with its files, though it was created well over 3 s ago.
    let still = runs
        .get(&slow_name)
        .await
        .expect("a running run is never deleted");
    let phase = still.status.as_ref().and_then(|s| s.phase);
    assert!(
        phase.is_some_and(|p| !p.is_terminal()),
        "the slow run ended before the fast one expired ({phase:?}): lengthen SLOW"
    );
    assert_eq!(configmaps_of(&client, &ns, &slow_uid).await.len(), 1);

    // Once it finished, its 3 s run out from then, and it goes too.
    let result = run(&ns, &["result", &slow_name]);
    assert_eq!(code(&result), 0, "{}", stderr(&result));
    assert_eq!(result.stdout, b"slow-done\n");
    wait_until(
        Duration::from_secs(60),
        "the slow run and its file ConfigMap to be deleted after it finished",
        || async {
            let gone = runs.get_opt(&slow_name).await.ok()?.is_none()
                && configmaps_of(&client, &ns, &slow_uid).await.is_empty();
            gone.then_some(())
        },
    )
    .await;

    // Deleted runs are never sent again: one more run through the same operator, then count.
    let marker = run(
        &ns,
        &[
            "aks",
            &aks_id("aks-ttl"),
            "--ttl",
            "none",
            "-c",
            "echo marker",
        ],
    );
    assert_eq!(code(&marker), 0, "{}", stderr(&marker));
    assert_eq!(emulator.dispatches("cat a.txt").await, 1);
    assert_eq!(emulator.dispatches(SLOW).await, 1);
    // --ttl none keeps the run.
    let kept = runs.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(kept.len(), 1, "only the marker is left");
    assert_eq!(kept[0].spec.ttl_seconds_after_finished, None);
}
