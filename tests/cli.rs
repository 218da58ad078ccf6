//! `kubectl invoke` end to end: the kubectl-invoke binary against the local cluster, the operator and
//! the emulator — exit codes, byte-exact output, `--file .`, `--no-wait` + `result`, Ctrl-C.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kubeinvoke::api::RemoteCommand;
use sha2::{Digest, Sha256};
use support::cli::{code, invoke, run};
use support::emulator::{Emulator, aks_id, world};
use support::operator::Operator;
use support::rcmd::setup;
use support::{Cluster, wait_until};

const EXTRA: &str = "          - {name: aks-cli, commandDuration: 0}\n          - {name: aks-cli-slow, commandDuration: 5}";

fn start(ns: &str) -> (Emulator, Operator) {
    let emulator = Emulator::start(&world(EXTRA, ""), &[]);
    let operator = Operator::start(&emulator, ns, &[]);
    (emulator, operator)
}

fn aks_run(ns: &str, command: &str) -> Output {
    run(ns, &["aks", &aks_id("aks-cli"), "--command", command])
}

#[tokio::test]
async fn the_remote_exit_code_is_the_cli_exit_code() {
    let (_client, ns) = setup("cli-exit").await;
    let (_emulator, _operator) = start(&ns);
    for (command, want) in [
        ("echo fine", 0),
        ("exit 3", 3),
        ("no-such-command-here", 127),
    ] {
        let out = aks_run(&ns, command);
        assert_eq!(
            code(&out),
            want,
            "`{command}`: stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // az's -g/--name form names the same cluster.
    let out = run(
        &ns,
        &[
            "aks",
            "--subscription",
            support::emulator::SUBSCRIPTION,
            "-g",
            "rg1",
            "--name",
            "aks-cli",
            "-c",
            "echo by-name",
        ],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"by-name\n");
    // `kubeinvoke run` is the same command line.
    let out = Command::new(env!("CARGO_BIN_EXE_kubeinvoke"))
        .env("KUBECONFIG", &Cluster::get().kubeconfig)
        .args([
            "run",
            "-n",
            &ns,
            "aks",
            &aks_id("aks-cli"),
            "-c",
            "echo same; exit 5",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 5, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"same\n");
}

#[tokio::test]
async fn output_is_byte_exact_with_the_output_secret() {
    let (client, ns) = setup("cli-bytes").await;
    let (_emulator, _operator) = start(&ns);
    // ~500 kB of multi-byte UTF-8 with no newline at the end.
    let command = "i=0; while [ $i -lt 5000 ]; do printf 'ünïcødé ✓ %04d ' $i; printf 'x%.0s' $(seq 70); i=$((i+1)); done; printf '€'";
    let out = aks_run(&ns, command);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.len() > 400_000, "{} bytes", out.stdout.len());
    let api = Api::<RemoteCommand>::namespaced(client.clone(), &ns);
    let rc = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let secret = rc.status.unwrap().output_secret_name.unwrap();
    let stored = Api::<Secret>::namespaced(client, &ns)
        .get(&secret)
        .await
        .unwrap()
        .data
        .unwrap()
        .remove("output")
        .unwrap()
        .0;
    assert!(
        out.stdout == stored,
        "stdout differs from the output Secret"
    );
    assert!(out.stdout.ends_with("€".as_bytes()));
}

#[tokio::test]
async fn file_dot_sends_nested_and_binary_files() {
    let (_client, ns) = setup("cli-files").await;
    let (_emulator, _operator) = start(&ns);
    let dir = support::scratch_dir("cli-files");
    std::fs::create_dir_all(dir.join("deploy/nested")).unwrap();
    std::fs::write(dir.join("deploy/nested/app.yaml"), "kind: Deployment\n").unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    std::fs::write(dir.join("blob.bin"), &binary).unwrap();
    std::fs::write(dir.join("top.txt"), "top\n").unwrap();
    let out = invoke(
        &ns,
        &dir,
        &[
            "aks",
            &aks_id("aks-cli"),
            "--file",
            ".",
            "--command",
            "find . -type f | sort; sha256sum blob.bin; cat deploy/nested/app.yaml",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for path in ["./blob.bin", "./deploy/nested/app.yaml", "./top.txt"] {
        assert!(text.contains(path), "{path} missing: {text}");
    }
    let digest: String = Sha256::digest(&binary)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        text.contains(&digest),
        "binary file changed on the way: {text}"
    );
    assert!(text.contains("kind: Deployment"), "{text}");
}

#[tokio::test]
async fn no_wait_then_result_and_a_reason_maps_to_its_exit_code() {
    let (_client, ns) = setup("cli-nowait").await;
    let (_emulator, _operator) = start(&ns);
    let out = run(
        &ns,
        &[
            "aks",
            &aks_id("aks-cli"),
            "--no-wait",
            "-c",
            "echo later; exit 4",
        ],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let name = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(name.starts_with("invoke-"), "{name}");
    let result = run(&ns, &["result", &name]);
    assert_eq!(
        code(&result),
        4,
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(result.stdout, b"later\n");
    // json carries the outcome with the output.
    let json = run(&ns, &["result", &name, "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["reason"], "NonZeroExit");
    assert_eq!(doc["output"], "later\n");
    // A cluster ARM does not know: refused before it ran.
    let missing = run(&ns, &["aks", &aks_id("no-such-cluster"), "-c", "true"]);
    assert_eq!(
        code(&missing),
        i32::from(kubeinvoke::cli::exit::REFUSED),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("TargetNotFound"));
    let listed = run(&ns, &["ls"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains(&name) && listed.contains("TargetNotFound"),
        "{listed}"
    );
}

#[tokio::test]
async fn ctrl_c_while_waiting_leaves_the_run_to_finish() {
    let (client, ns) = setup("cli-sigint").await;
    let (_emulator, _operator) = start(&ns);
    let child = invoke(
        &ns,
        &std::env::temp_dir(),
        &[
            "aks",
            &aks_id("aks-cli"),
            "-c",
            "sleep 4; echo finished-anyway",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let api = Api::<RemoteCommand>::namespaced(client.clone(), &ns);
    let name = wait_until(
        Duration::from_secs(30),
        "the run to be dispatched",
        || async {
            let rc = api.list(&ListParams::default()).await.ok()?.items.pop()?;
            let running = rc.status.as_ref()?.command_id.is_some();
            running.then(|| rc.metadata.name.clone().unwrap())
        },
    )
    .await;
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        code(&out),
        i32::from(kubeinvoke::cli::exit::INTERRUPTED),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("kubectl invoke result {name}")),
        "{stderr}"
    );
    let rc = support::rcmd::wait_finished(&client, &ns, &name).await;
    assert_eq!(support::rcmd::outcome(&rc).1, "Completed");
    let result = run(&ns, &["result", &name]);
    assert_eq!(result.stdout, b"finished-anyway\n");
}

#[test]
fn completion_scripts_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(support::dist::plugin())
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("kubeconfig") && script.contains("no-wait"),
            "{shell}"
        );
    }
}

/// A failure after the command ran never exits 241 ("never ran"): a foreign Secret that takes the
/// output's name while the command runs ends the run as SecretConflict, and the CLI exits with the
/// command's own exit code. The same Secret there before the run is refused before dispatch.
#[tokio::test]
async fn a_failure_after_dispatch_never_exits_as_never_ran() {
    let (client, ns) = setup("cli-after").await;
    let (emulator, _operator) = start(&ns);
    let out = run(
        &ns,
        &[
            "aks",
            &aks_id("aks-cli-slow"),
            "--no-wait",
            "-c",
            "echo ran; exit 7",
        ],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let name = String::from_utf8(out.stdout).unwrap().trim().to_string();
    support::rcmd::wait_for(&client, &ns, &name, "dispatched", |rc| {
        rc.status.as_ref().is_some_and(|s| s.command_id.is_some())
    })
    .await;
    let foreign = |name: &str| -> Secret {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": name}, "stringData": {"mine": "yes"}}),
        )
        .unwrap()
    };
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    secrets
        .create(&Default::default(), &foreign(&format!("{name}-output")))
        .await
        .unwrap();
    let result = run(&ns, &["result", &name]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(code(&result), 7, "{stderr}");
    assert!(stderr.contains("SecretConflict"), "{stderr}");

    // Before the run: refused before anything is sent, so 241 is the truth.
    secrets
        .create(&Default::default(), &foreign("taken"))
        .await
        .unwrap();
    let mut spec = support::rcmd::aks("aks-cli", "echo must-not-run");
    spec["output"] = serde_json::json!({"secretName": "taken"});
    support::rcmd::create(&client, &ns, "taken", spec).await;
    let refused = run(&ns, &["result", "taken"]);
    assert_eq!(
        code(&refused),
        i32::from(kubeinvoke::cli::exit::REFUSED),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(emulator.dispatches("echo must-not-run").await, 0);
}

/// With no operator serving the namespace the CLI does not wait forever: it withdraws the run it
/// created and exits 245, and an operator that comes back later finds nothing to start.
#[tokio::test]
async fn with_no_operator_the_run_is_withdrawn_and_never_starts_later() {
    let (client, ns) = setup("cli-no-operator").await;
    let emulator = Emulator::start(&world(EXTRA, ""), &[]);
    let out = aks_run(&ns, "echo nobody-served-this");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        code(&out),
        i32::from(kubeinvoke::cli::exit::NO_OPERATOR),
        "{stderr}"
    );
    assert!(stderr.contains("withdrawn"), "{stderr}");
    let left = Api::<RemoteCommand>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(left.items.is_empty(), "a withdrawn run is gone");
    // An operator that starts now has nothing to run.
    let _operator = Operator::start(&emulator, &ns, &[]);
    create_marker_and_wait(&client, &ns).await;
    assert_eq!(emulator.dispatches("echo nobody-served-this").await, 0);
}

/// Runs one more command through the operator and waits for it: when it finished, the operator
/// had every chance to pick up whatever else was in the namespace.
async fn create_marker_and_wait(client: &kube::Client, ns: &str) {
    support::rcmd::create(
        client,
        ns,
        "marker",
        support::rcmd::aks("aks-cli", "echo marker"),
    )
    .await;
    let rc = support::rcmd::wait_finished(client, ns, "marker").await;
    assert_eq!(
        support::rcmd::outcome(&rc),
        ("Succeeded".into(), "Completed".into())
    );
}
