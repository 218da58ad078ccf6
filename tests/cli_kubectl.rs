//! `kubectl invoke` as people type it: a current kubectl (Debian unstable's, unpacked by
//! `hack/kubectl-current.sh`) finds the plugin on PATH, runs it against the local cluster and
//! passes its exit status through; kubectl's own completion asks `kubectl_complete-invoke`.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::cli::code;
use support::emulator::{Emulator, aks_id, world};
use support::operator::Operator;
use support::rcmd::setup;
use support::{Cluster, repo_root};

const EXTRA: &str = "          - {name: aks-kubectl, commandDuration: 0}";

/// The current kubectl's path, fetched once by the prerequisites script.
fn current_kubectl() -> PathBuf {
    let out = Command::new(repo_root().join("hack/kubectl-current.sh"))
        .arg("--print-path")
        .output()
        .expect("run hack/kubectl-current.sh");
    assert!(
        out.status.success(),
        "no current kubectl (make prereqs fetches it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A directory for PATH holding the plugin and its completer, as a user installs them: the
/// release's plugin archive, unpacked.
fn plugin_dir() -> PathBuf {
    support::dist::plugin_dir().clone()
}

struct Kubectl {
    bin: PathBuf,
    path: String,
}

impl Kubectl {
    fn new() -> Self {
        let path = format!(
            "{}:{}",
            plugin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Kubectl {
            bin: current_kubectl(),
            path,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .env("PATH", &self.path)
            .env("KUBECONFIG", &Cluster::get().kubeconfig)
            .env_remove("KUBECTL_PLUGINS_PATH")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin.display()))
    }

    /// The candidates kubectl's completion offers for `words` (the last is being typed).
    fn complete(&self, words: &[&str]) -> Vec<String> {
        let mut args = vec!["__complete"];
        args.extend(words);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "kubectl __complete {words:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with(':') && !l.is_empty())
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_current_kubectl_runs_the_plugin_passes_its_exit_status_and_completes_it() {
    let (_client, ns) = setup("cli-kubectl").await;
    let emulator = Emulator::start(&world(EXTRA, ""), &[]);
    let _operator = Operator::start(&emulator, &ns, &[]);
    let kubectl = Kubectl::new();
    let version = kubectl.run(&["version", "--client"]);
    assert!(version.status.success(), "{}", text(&version.stderr));
    eprintln!(
        "{}",
        text(&version.stdout).lines().next().unwrap_or_default()
    );

    let plugins = kubectl.run(&["plugin", "list", "--name-only"]);
    assert!(
        text(&plugins.stdout)
            .lines()
            .any(|l| l.trim() == "kubectl-invoke"),
        "kubectl does not see the plugin: {}{}",
        text(&plugins.stdout),
        text(&plugins.stderr)
    );

    // A run through kubectl, its exit status passed through.
    let id = aks_id("aks-kubectl");
    let out = kubectl.run(&[
        "invoke",
        "-n",
        &ns,
        "aks",
        &id,
        "-c",
        "echo via-kubectl; exit 6",
    ]);
    assert_eq!(code(&out), 6, "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"via-kubectl\n");
    let ok = kubectl.run(&[
        "invoke",
        "aks",
        &id,
        "--namespace",
        &ns,
        "--command",
        "echo fine",
    ]);
    assert_eq!(code(&ok), 0, "{}", text(&ok.stderr));
    assert_eq!(ok.stdout, b"fine\n");

    // --no-wait, result and ls, with -o as the output format.
    let created = kubectl.run(&[
        "invoke",
        "-n",
        &ns,
        "aks",
        &id,
        "--no-wait",
        "-c",
        "echo later",
    ]);
    assert_eq!(code(&created), 0, "{}", text(&created.stderr));
    let name = text(&created.stdout).trim().to_string();
    let result = kubectl.run(&["invoke", "-n", &ns, "result", &name, "-o", "json"]);
    assert_eq!(code(&result), 0, "{}", text(&result.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(
        (doc["name"].as_str(), doc["output"].as_str()),
        (Some(name.as_str()), Some("later\n"))
    );
    let listed = kubectl.run(&["invoke", "-n", &ns, "ls"]);
    assert_eq!(code(&listed), 0, "{}", text(&listed.stderr));
    let listed = text(&listed.stdout);
    assert!(
        listed.starts_with("NAME ") && listed.contains(&name),
        "{listed}"
    );
    assert_eq!(
        listed.lines().count(),
        4,
        "a header and three runs: {listed}"
    );
    let all = text(&kubectl.run(&["invoke", "ls", "-A"]).stdout);
    assert!(
        all.starts_with("NAMESPACE ")
            && all.lines().any(|l| l.starts_with(&ns) && l.contains(&name)),
        "{all}"
    );
    // A wrong argument is the CLI's own failure, through kubectl as well.
    let wrong = kubectl.run(&["invoke", "-n", &ns, "kubeconfig", "x", "-o", "file"]);
    assert_eq!(code(&wrong), i32::from(kubeinvoke::cli::exit::CLI_ERROR));

    // kubectl's completion asks kubectl_complete-invoke.
    assert_eq!(kubectl.complete(&["invoke", "res"]), ["result"]);
    assert_eq!(
        kubectl.complete(&["invoke", "aks", &id, "-o", ""]),
        ["text", "json", "yaml"]
    );
    assert!(
        kubectl
            .complete(&["invoke", "ls", "--all"])
            .contains(&"--all-namespaces".to_string())
    );
    // Names come from the cluster, in the namespace given before the word.
    let runs = kubectl.complete(&["invoke", "-n", &ns, "result", ""]);
    assert!(runs.contains(&name), "{name} not offered: {runs:?}");
    assert_eq!(runs.len(), 3, "{runs:?}");
    let namespaces = kubectl.complete(&["invoke", "-n", &ns[..ns.len() - 1]]);
    assert!(namespaces.contains(&ns), "{ns} not offered: {namespaces:?}");
}
