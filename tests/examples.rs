//! End to end: every manifest in `examples/` is applied the way its README says, against the
//! operator installed from its chart and the emulator, and reaches the outcome its comments
//! document. `every_example_file_is_covered_by_a_scenario` fails when a file is added to
//! `examples/` without a scenario here.
//!
//! The Argo CD and Flux objects themselves (Application, GitRepository, Kustomization) need those
//! tools' CRDs, which the test cluster does not have: the scenarios do what the tools would do with
//! the kubeinvoke resources (apply them into the destination namespace, wave by wave, or through
//! kustomize), check that the tools' objects point at what the operator writes, and check the
//! Secrets in the layout Argo CD and Flux read.
//!
//! The scenarios take turns ([`NODE`]): a 2-core node runs one release's pods at a time comfortably.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use kubeinvoke::api::{KubeconfigExport, KubeconfigExportSet, RemoteCommand, RemoteCommandSet};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use support::emulator::{Emulator, managed_identity_env, with_managed_identity, world};
use support::kcx::{assert_kubeconfig_works, condition, text};
use support::release::Installed;
use support::{Cluster, install_crds, namespace, repo_root, wait_until};

static NODE: Mutex<()> = Mutex::const_new(());

/// Applied together with `kubectl apply -n <ns> -f examples/` (README, `make demo`).
const TOP_LEVEL: &[&str] = &[
    "credentials.yaml",
    "kubeconfig-export-aks-flux.yaml",
    "kubeconfig-export-argocd.yaml",
    "kubeconfig-export-hybrid.yaml",
    "remote-command-aci-shell.yaml",
    "remote-command-aci.yaml",
    "remote-command-aks-files.yaml",
    "remote-command-aks.yaml",
];

/// `examples/flux`: Flux's objects are checked for what they point at, `kubeinvoke/` is built with
/// kustomize and applied into `fleet`, `operator-values.yaml` installs the operator.
const FLUX: &[&str] = &[
    "flux/aks1-apps.yaml",
    "flux/gitrepository.yaml",
    "flux/kubeinvoke.yaml",
    "flux/kustomization.yaml",
    "flux/namespace.yaml",
    "flux/operator-values.yaml",
    "flux/kubeinvoke/files/namespace.yaml",
    "flux/kubeinvoke/kubeconfig-export.yaml",
    "flux/kubeinvoke/kustomization.yaml",
    "flux/kubeinvoke/kustomizeconfig.yaml",
    "flux/kubeinvoke/remote-command.yaml",
];

/// `examples/argocd`: the Applications are checked for what they point at, `kubeinvoke/` is applied
/// into `team-a` wave by wave and `clusters/` into `argocd`, `operator-values.yaml` installs the
/// operator.
const ARGOCD: &[&str] = &[
    "argocd/application.yaml",
    "argocd/clusters-application.yaml",
    "argocd/operator-values.yaml",
    "argocd/clusters/kubeconfig-export.yaml",
    "argocd/kubeinvoke/remote-command.yaml",
    "argocd/kubeinvoke/remote-command-after-migrate.yaml",
];

/// `examples/fleet`: the two RemoteCommandSets applied one after the other, the two
/// KubeconfigExportSets into `argocd` and `platform`; the ApplicationSet and the Flux
/// Kustomization are checked for what they point at; `operator-values.yaml` installs the operator.
const FLEET: &[&str] = &[
    "fleet/argocd-prod-apps.yaml",
    "fleet/argocd-prod-clusters.yaml",
    "fleet/flux-aks-prod-01-apps.yaml",
    "fleet/flux-prod-clusters.yaml",
    "fleet/operator-values.yaml",
    "fleet/patch-1-canary.yaml",
    "fleet/patch-2-prod.yaml",
];

/// How long a run or an export may take here: command pods start on the node, operator start-up.
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(180);

fn examples_dir() -> PathBuf {
    repo_root().join("examples")
}

/// Every file under `dir` except the READMEs, relative to `examples/`.
fn example_files(dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            example_files(&path, found);
        } else if path.extension().and_then(|e| e.to_str()) != Some("md") {
            let relative = path.strip_prefix(examples_dir()).expect("under examples/");
            found.insert(relative.to_str().expect("UTF-8 path").to_string());
        }
    }
}

#[test]
fn every_example_file_is_covered_by_a_scenario() {
    let mut on_disk = BTreeSet::new();
    example_files(&examples_dir(), &mut on_disk);
    let covered: BTreeSet<String> = TOP_LEVEL
        .iter()
        .chain(FLUX)
        .chain(ARGOCD)
        .chain(FLEET)
        .map(|s| s.to_string())
        .collect();
    let uncovered: Vec<_> = on_disk.difference(&covered).collect();
    let gone: Vec<_> = covered.difference(&on_disk).collect();
    assert!(
        uncovered.is_empty() && gone.is_empty(),
        "examples/ and tests/examples.rs disagree: without a scenario {uncovered:?}; \
         listed but missing {gone:?}. Add each new example to a scenario with the outcome it documents."
    );
}

// ---- what the scenarios share ----

/// The emulator's world for the examples: the resources they name (aks1, aks-aad, cg1, arc1 in
/// rg1), aks1 running its commands in pods on the node as AKS does (so kubectl in a command reaches
/// the "private cluster", here the local one), `extra_clusters` (YAML as [`world`] takes it), and a
/// managed identity for the operator.
fn examples_world_with(extra_clusters: &str) -> String {
    let world = world(extra_clusters, "");
    assert!(world.contains("{name: aks1, "), "world() lists aks1");
    with_managed_identity(&world.replacen(
        "{name: aks1, ",
        "{name: aks1, commandPod: {startTimeoutSeconds: 60}, ",
        1,
    ))
}

fn examples_world() -> String {
    examples_world_with("")
}

/// An example's Helm values for the operator, with the emulator's managed identity standing in for
/// the workload identity a real install sets up, and the test cluster's API server address.
fn operator_values(example: &str, emulator: &Emulator) -> String {
    let mut values = yaml(example);
    values["operatorIdentity"] = json!("managed");
    values["extraEnv"] = managed_identity_env(emulator);
    // JSON is YAML.
    values.to_string()
}

/// Creates the namespaces an example's operator values watch (Helm does not, and the chart puts a
/// Role in each), and waits until the release namespace `<watch_ns>-op` of an earlier scenario
/// with the same `watch_ns` is gone.
async fn watched_namespaces(client: &Client, values_example: &str, watch_ns: &str) {
    for ns in yaml(values_example)["watchNamespaces"]
        .as_array()
        .expect("watchNamespaces")
    {
        fixed_namespace(client, ns.as_str().expect("a namespace")).await;
    }
    let release_ns = format!("{watch_ns}-op");
    let api = Api::<Namespace>::all(client.clone());
    wait_until(
        OUTCOME_TIMEOUT,
        &format!("namespace {release_ns} of an earlier scenario to be deleted"),
        || {
            let api = api.clone();
            let release_ns = release_ns.clone();
            async move { api.get_opt(&release_ns).await.ok()?.is_none().then_some(()) }
        },
    )
    .await;
}

/// The documents of an example file, parsed.
fn documents(example: &str) -> Vec<Value> {
    let path = examples_dir().join(example);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split("\n---\n")
        .map(|doc| {
            serde_saphyr::from_str::<Value>(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The single document of an example file.
fn yaml(example: &str) -> Value {
    let mut docs = documents(example);
    assert_eq!(docs.len(), 1, "{example} holds one document");
    docs.pop().unwrap()
}

/// `kubectl apply` with `args`, panicking with kubectl's error.
fn apply(args: &[&str]) -> String {
    let mut all = vec!["apply"];
    all.extend_from_slice(args);
    Cluster::get().kubectl_ok(&all)
}

fn example_path(example: &str) -> String {
    examples_dir()
        .join(example)
        .to_str()
        .expect("UTF-8 path")
        .to_string()
}

/// Creates namespace `name` unless it exists (the Argo CD and Flux examples name theirs).
async fn fixed_namespace(client: &Client, name: &str) {
    let api = Api::<Namespace>::all(client.clone());
    if api.get_opt(name).await.expect("get namespace").is_none() {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
    }
}

/// What a RemoteCommand example documents as its outcome.
struct Run {
    phase: &'static str,
    reason: &'static str,
    exit_code: Option<i32>,
    /// Text the output Secret's `output` must hold.
    output: &'static [&'static str],
}

/// Waits until `name` finished and checks it against `want`; returns its output.
async fn assert_run(client: &Client, ns: &str, name: &str, want: &Run, op: &Installed) -> String {
    let api = Api::<RemoteCommand>::namespaced(client.clone(), ns);
    let rc = wait_until(
        OUTCOME_TIMEOUT,
        &format!("RemoteCommand {ns}/{name} to finish"),
        || {
            let api = api.clone();
            async move {
                let rc = api.get_opt(name).await.ok()??;
                let terminal = rc.status.as_ref()?.phase?.is_terminal();
                terminal.then_some(rc)
            }
        },
    )
    .await;
    let status = rc.status.clone().unwrap_or_default();
    let phase = status.phase.map(|p| format!("{p:?}")).unwrap_or_default();
    // A run refused before it ran has no output Secret: its phase and reason say why below.
    let output = if status.output_secret_name.is_some() {
        support::rcmd::output(client, ns, &rc).await
    } else {
        String::new()
    };
    assert_eq!(
        (
            phase.as_str(),
            status.reason.as_deref().unwrap_or(""),
            status.exit_code
        ),
        (want.phase, want.reason, want.exit_code),
        "{ns}/{name}: {:?}\noutput:\n{output}\n{}",
        status.message,
        op.logs()
    );
    for expected in want.output {
        assert!(
            output.contains(expected),
            "{ns}/{name}: the output lacks {expected:?}:\n{output}"
        );
    }
    output
}

/// Waits until export `name` is Ready (its Secret written) and returns it.
async fn assert_exported(
    client: &Client,
    ns: &str,
    name: &str,
    op: &Installed,
) -> KubeconfigExport {
    let api = Api::<KubeconfigExport>::namespaced(client.clone(), ns);
    let ready = wait_until(
        OUTCOME_TIMEOUT,
        &format!("KubeconfigExport {ns}/{name} to be Ready"),
        || {
            let api = api.clone();
            async move {
                let k = api.get_opt(name).await.ok()??;
                let s = k.status.as_ref()?;
                // A refused export never becomes Ready: say why at once instead of timing out.
                assert!(
                    s.reason.as_deref() != Some("Forbidden"),
                    "{ns}/{name} is Forbidden: {:?}\n{}",
                    s.message,
                    op.logs()
                );
                (condition(&k, "Ready").as_deref() == Some("True")
                    && s.observed_generation == k.metadata.generation.unwrap_or_default())
                .then_some(k)
            }
        },
    )
    .await;
    assert_eq!(
        ready.status.as_ref().and_then(|s| s.reason.as_deref()),
        Some("Exported")
    );
    ready
}

async fn secret(client: &Client, ns: &str, name: &str) -> Secret {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Secret {ns}/{name}: {e}"))
}

fn keys(secret: &Secret) -> Vec<String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect()
}

fn label<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .metadata
        .labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Every user of a kubeconfig carries a bearer token and no exec plugin (what Flux and Argo CD
/// can use without kubelogin).
fn assert_token_users(kubeconfig: &str, what: &str) {
    let parsed: Value = serde_saphyr::from_str(kubeconfig).expect("kubeconfig YAML");
    let users = parsed["users"].as_array().expect("users");
    assert!(!users.is_empty(), "{what}: no users");
    for user in users {
        assert!(
            user["user"].get("exec").is_none(),
            "{what}: exec user {user}"
        );
        assert!(
            user["user"]["token"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{what}: no bearer token in {user}"
        );
    }
}

/// The names of the RemoteCommands and KubeconfigExports in `ns`.
async fn kubeinvoke_objects(client: &Client, ns: &str) -> BTreeSet<String> {
    let commands = Api::<RemoteCommand>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list RemoteCommands");
    let exports = Api::<KubeconfigExport>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list KubeconfigExports");
    commands
        .items
        .iter()
        .map(|r| format!("RemoteCommand/{}", r.name_any()))
        .chain(
            exports
                .items
                .iter()
                .map(|k| format!("KubeconfigExport/{}", k.name_any())),
        )
        .collect()
}

/// The emulator's world for `examples/fleet`: two canaries and six other clusters tagged
/// `env: prod` (canaries also `ring: canary`), three tagged `env: dev`, all in rg1 with a kubeconfig
/// for the local cluster; commands take a moment, so that running two at once would show.
fn fleet_world() -> String {
    let kubeconfig = support::emulator::kubeconfig_spec(Cluster::get());
    let sets = [
        format!(
            "{{count: {CANARIES}, namePattern: \"aks-canary-{{i}}\", tags: {{env: prod, ring: canary}}, commandDuration: 2, {kubeconfig}}}"
        ),
        format!(
            "{{count: {PROD}, namePattern: \"aks-prod-{{i:02}}\", tags: {{env: prod}}, commandDuration: 1, {kubeconfig}}}"
        ),
        format!(
            "{{count: 3, namePattern: \"aks-dev-{{i:02}}\", tags: {{env: dev}}, {kubeconfig}}}"
        ),
    ];
    let sets: String = sets.iter().map(|s| format!("\n          - {s}")).collect();
    examples_world_with(&format!("        managedClusterSets:{sets}"))
}

const CANARIES: usize = 2;
const PROD: usize = 6;

fn canaries() -> Vec<String> {
    (1..=CANARIES).map(|i| format!("aks-canary-{i}")).collect()
}

/// Every cluster tagged `env: prod` in [`fleet_world`], canaries included.
fn prod_clusters() -> Vec<String> {
    canaries()
        .into_iter()
        .chain((1..=PROD).map(|i| format!("aks-prod-{i:02}")))
        .collect()
}

/// Waits until fleet object `name` (a RemoteCommandSet or a KubeconfigExportSet) has seen its spec,
/// shows `reason` and `done` holds for its status; returns the status. A reason that will not
/// change by itself fails at once, with the operator's log.
async fn wait_fleet<K>(
    client: &Client,
    ns: &str,
    name: &str,
    reason: &str,
    done: impl Fn(&Value) -> bool,
    op: &Installed,
) -> Value
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Serialize,
{
    const FINAL: &[&str] = &[
        "Forbidden",
        "InvalidSpec",
        "TargetNotFound",
        "MaxErrorsExceeded",
        "TargetsFailed",
        "ExportsFailed",
    ];
    let api = Api::<K>::namespaced(client.clone(), ns);
    wait_until(
        OUTCOME_TIMEOUT,
        &format!("{ns}/{name} to reach {reason}"),
        || {
            let api = api.clone();
            let done = &done;
            async move {
                let object = serde_json::to_value(api.get_opt(name).await.ok()??).ok()?;
                let status = object.get("status")?.clone();
                let current = status["observedGeneration"] == object["metadata"]["generation"];
                let now = status["reason"].as_str().unwrap_or_default();
                assert!(
                    !(current && now != reason && FINAL.contains(&now)),
                    "{ns}/{name} is {now}, not {reason}: {status}\n{}",
                    op.logs()
                );
                (current && now == reason && done(&status)).then_some(status)
            }
        },
    )
    .await
}

/// The targets of a fleet run's status, by cluster name.
fn target_names(status: &Value) -> BTreeSet<String> {
    status["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str()?.rsplit('/').next().map(str::to_string))
        .collect()
}

// ---- the scenarios ----

/// `kubectl apply -n <ns> -f examples/`, as the README and `make demo` do: with the namespace's
/// own credential Secret (`credentials.yaml`) every command succeeds and every export writes its
/// Secret in the documented format, with no grant of the operator's identity.
#[tokio::test]
async fn top_level_examples_reach_their_documented_outcomes() {
    let _turn = NODE.lock().await;
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "examples").await;
    let emulator = Emulator::start(&examples_world(), &[]);
    let op = Installed::install(&client, &emulator, &ns).await;
    apply(&["-n", &ns, "-f", &example_path("")]);

    let runs: BTreeMap<&str, Run> = BTreeMap::from([
        (
            "list-system-pods",
            Run {
                phase: "Succeeded",
                reason: "Completed",
                exit_code: Some(0),
                output: &["hello from the private cluster"],
            },
        ),
        (
            "apply-manifests",
            Run {
                phase: "Succeeded",
                reason: "Completed",
                exit_code: Some(0),
                // `ls -R .` lists the attached file, `cat` prints it.
                output: &["namespace.yaml", "kind: Namespace", "name: team-a"],
            },
        ),
        (
            "app-disk-usage",
            Run {
                phase: "Succeeded",
                reason: "Completed",
                exit_code: Some(0),
                // `df -h /` and `uname -a`.
                output: &["Filesystem", "Linux"],
            },
        ),
        (
            "app-env",
            Run {
                phase: "Succeeded",
                reason: "ExitCodeUnavailable",
                exit_code: None,
                output: &["PATH="],
            },
        ),
    ]);
    let exports = ["aks-aad-flux", "aks1-argocd", "arc1-admin"];
    let expected: BTreeSet<String> = runs
        .keys()
        .map(|n| format!("RemoteCommand/{n}"))
        .chain(exports.iter().map(|n| format!("KubeconfigExport/{n}")))
        .collect();
    assert_eq!(
        kubeinvoke_objects(&client, &ns).await,
        expected,
        "every resource in examples/ needs its documented outcome here"
    );

    for (name, want) in &runs {
        assert_run(&client, &ns, name, want, &op).await;
    }
    // apply-manifests asks for a status tail of its output (output.tailBytes: 4096).
    let rc = support::rcmd::get(&client, &ns, "apply-manifests").await;
    let tail = rc.status.and_then(|s| s.output_tail).unwrap_or_default();
    assert!(tail.contains("name: team-a"), "status.outputTail: {tail:?}");

    // An AKS user kubeconfig for Flux: key `value`, the AAD exec user swapped for a token.
    let k = assert_exported(&client, &ns, "aks-aad-flux", &op).await;
    assert!(k.status.unwrap().expires_at.is_some(), "the token's expiry");
    let flux = secret(&client, &ns, "aks-aad-kubeconfig").await;
    assert_eq!(flux.type_.as_deref(), Some("Opaque"));
    assert_eq!(keys(&flux), ["value"]);
    assert_token_users(&text(&flux, "value"), "aks-aad-kubeconfig");

    // An Argo CD cluster Secret: its label, the example's labels and the three keys.
    assert_exported(&client, &ns, "aks1-argocd", &op).await;
    let argocd = secret(&client, &ns, "aks1-cluster").await;
    assert_eq!(keys(&argocd), ["config", "name", "server"]);
    assert_eq!(
        label(&argocd, "argocd.argoproj.io/secret-type"),
        Some("cluster")
    );
    assert_eq!(label(&argocd, "environment"), Some("staging"));
    assert_eq!(text(&argocd, "name"), "aks1");
    assert_eq!(text(&argocd, "server"), Cluster::get().server);
    let config: Value = serde_json::from_str(&text(&argocd, "config")).expect("config is JSON");
    assert!(
        config["bearerToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
            && config["tlsClientConfig"]["caData"].is_string(),
        "config: {config}"
    );

    // The Arc cluster's admin kubeconfig, for kubectl.
    assert_exported(&client, &ns, "arc1-admin", &op).await;
    let arc = secret(&client, &ns, "arc1-admin-kubeconfig").await;
    assert_eq!(keys(&arc), ["kubeconfig"]);
    assert_kubeconfig_works(&text(&arc, "kubeconfig"), &ns);
}

/// `examples/flux` with the operator's identity granted by `operator-values.yaml`: what
/// `kubeinvoke-fleet` applies into `fleet` runs its command and exports the kubeconfig that
/// `aks1-apps` reads, in the Flux format, usable by a client that cannot run kubelogin.
#[tokio::test]
async fn flux_example_runs_its_command_and_exports_the_kubeconfig_its_kustomization_reads() {
    let _turn = NODE.lock().await;
    let client = Cluster::get().client().await;
    install_crds(&client).await;

    // What `kubectl apply -k examples/flux` would create, and how the objects point at each other.
    let listed = yaml("flux/kustomization.yaml")["resources"].clone();
    let listed: BTreeSet<&str> = listed
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file name"))
        .collect();
    let manifests: BTreeSet<&str> = FLUX
        .iter()
        .filter_map(|f| f.strip_prefix("flux/"))
        .filter(|f| !f.contains('/') && *f != "kustomization.yaml" && *f != "operator-values.yaml")
        .collect();
    assert_eq!(
        listed, manifests,
        "flux/kustomization.yaml lists every Flux object"
    );
    let fleet = yaml("flux/kubeinvoke.yaml");
    let target = fleet["spec"]["targetNamespace"]
        .as_str()
        .expect("targetNamespace");
    assert_eq!(yaml("flux/namespace.yaml")["metadata"]["name"], target);
    let path = fleet["spec"]["path"].as_str().expect("path");
    assert!(
        repo_root().join(path).join("kustomization.yaml").is_file(),
        "kubeinvoke-fleet applies {path}, which must be a kustomization of this repository"
    );
    assert_eq!(
        fleet["spec"]["wait"], true,
        "kubeinvoke-fleet health-checks what it applies"
    );
    let export = yaml("flux/kubeinvoke/kubeconfig-export.yaml");
    let apps = yaml("flux/aks1-apps.yaml");
    assert_eq!(
        apps["metadata"]["namespace"], target,
        "Flux reads the Secret from its own namespace"
    );
    assert_eq!(
        apps["spec"]["dependsOn"][0]["name"],
        fleet["metadata"]["name"]
    );
    assert_eq!(
        apps["spec"]["kubeConfig"]["secretRef"],
        json!({"name": export["spec"]["secret"]["name"], "key": "value"}),
        "aks1-apps reads the export's Secret, key `value` of the Flux format"
    );
    assert_eq!(export["spec"]["secret"]["format"], "Flux");

    fixed_namespace(&client, target).await;
    let emulator = Emulator::start(&examples_world(), &[]);
    let values = operator_values("flux/operator-values.yaml", &emulator);
    let op = Installed::install_with(&client, &emulator, target, &values).await;

    // What kustomize-controller applies: the kustomization built, in the target namespace.
    let built = Cluster::get().kubectl_ok(&["kustomize", &example_path("flux/kubeinvoke")]);
    let out = Cluster::get().kubectl_stdin(&["apply", "-n", target, "-f", "-"], &built);
    assert!(
        out.status.success(),
        "applying the built kustomization: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        kubeinvoke_objects(&client, target).await,
        BTreeSet::from([
            "KubeconfigExport/aks1-flux".to_string(),
            "RemoteCommand/aks1-team-a-namespace".to_string()
        ])
    );
    // The generated ConfigMap's hashed name reached the RemoteCommand (kustomizeconfig.yaml).
    let rc = support::rcmd::get(&client, target, "aks1-team-a-namespace").await;
    let attached = serde_json::to_value(&rc.spec.files).unwrap()[0]["configMapRef"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        attached.starts_with("aks1-manifests-") && attached.len() > "aks1-manifests-".len(),
        "the RemoteCommand names the generated ConfigMap: {attached:?}"
    );
    assert_run(
        &client,
        target,
        "aks1-team-a-namespace",
        &Run {
            phase: "Succeeded",
            reason: "Completed",
            exit_code: Some(0),
            output: &["namespace/team-a"],
        },
        &op,
    )
    .await;

    let k = assert_exported(&client, target, "aks1-flux", &op).await;
    assert_eq!(
        k.status.unwrap().secret_name.as_deref(),
        Some("aks1-kubeconfig")
    );
    let flux = secret(&client, target, "aks1-kubeconfig").await;
    assert_eq!(keys(&flux), ["value"]);
    let kubeconfig = text(&flux, "value");
    assert_token_users(&kubeconfig, "aks1-kubeconfig");
    // What aks1-apps does with it: talk to the cluster's API server (here the local one).
    assert_kubeconfig_works(&kubeconfig, target);
}

/// `examples/argocd` with the operator's identity granted by `operator-values.yaml`: the commands
/// synced into `team-a` run wave by wave (wave 1 only once wave 0 is Healthy, i.e. Succeeded), and
/// the export synced into `argocd` writes the cluster Secret that `aks1-apps` names.
#[tokio::test]
async fn argocd_example_runs_its_waves_in_order_and_registers_the_cluster() {
    let _turn = NODE.lock().await;
    let client = Cluster::get().client().await;
    install_crds(&client).await;

    // Where the two Applications sync to.
    let app = yaml("argocd/application.yaml");
    assert_eq!(app["spec"]["source"]["path"], "examples/argocd/kubeinvoke");
    let team = app["spec"]["destination"]["namespace"]
        .as_str()
        .expect("destination.namespace")
        .to_string();
    let clusters_apps = documents("argocd/clusters-application.yaml");
    assert_eq!(clusters_apps.len(), 2, "kubeinvoke-clusters and aks1-apps");
    assert_eq!(
        clusters_apps[0]["spec"]["source"]["path"],
        "examples/argocd/clusters"
    );
    let argocd_ns = clusters_apps[0]["spec"]["destination"]["namespace"]
        .as_str()
        .expect("destination.namespace")
        .to_string();
    let export = yaml("argocd/clusters/kubeconfig-export.yaml");
    assert_eq!(export["metadata"]["namespace"], argocd_ns.as_str());
    for path in ["examples/argocd/kubeinvoke", "examples/argocd/clusters"] {
        assert!(repo_root().join(path).is_dir(), "{path}");
    }

    fixed_namespace(&client, &team).await;
    fixed_namespace(&client, &argocd_ns).await;
    // The "private cluster" aks1 is the local one: the Deployment the wave-1 command restarts.
    let api: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "api"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {
                    "hostNetwork": true,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "api",
                        "image": "localhost/kubeinvoke/aks-runner:1",
                        "imagePullPolicy": "Never",
                        "command": ["sleep", "3600"],
                    }],
                },
            },
        },
    }))
    .unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &team);
    if deployments.get_opt("api").await.unwrap().is_none() {
        deployments
            .create(&PostParams::default(), &api)
            .await
            .expect("create Deployment api");
    }

    let emulator = Emulator::start(&examples_world(), &[]);
    let values = operator_values("argocd/operator-values.yaml", &emulator);
    let op = Installed::install_with(&client, &emulator, &argocd_ns, &values).await;

    // Sync waves, as Argo CD orders them: a wave is applied once the one before is Healthy.
    let mut waves: BTreeMap<i64, Vec<(&str, String)>> = BTreeMap::new();
    for file in ARGOCD
        .iter()
        .filter(|f| f.starts_with("argocd/kubeinvoke/"))
    {
        let doc = yaml(file);
        let wave = doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .map(|w| w.parse().expect("a sync wave is a number"))
            .unwrap_or(0);
        let name = doc["metadata"]["name"].as_str().expect("name").to_string();
        waves.entry(wave).or_default().push((file, name));
    }
    let outcomes: BTreeMap<&str, Run> = BTreeMap::from([
        (
            "app-migrate",
            Run {
                phase: "Succeeded",
                reason: "Completed",
                exit_code: Some(0),
                output: &["migrated"],
            },
        ),
        (
            "aks1-rollout-restart",
            Run {
                phase: "Succeeded",
                reason: "Completed",
                exit_code: Some(0),
                output: &["deployment.apps/api restarted", "successfully rolled out"],
            },
        ),
    ]);
    let named: BTreeSet<&str> = waves.values().flatten().map(|(_, n)| n.as_str()).collect();
    assert_eq!(
        named,
        outcomes.keys().copied().collect(),
        "every command of examples/argocd/kubeinvoke needs its documented outcome here"
    );
    assert_eq!(waves.len(), 2, "two waves: {waves:?}");
    for (wave, files) in &waves {
        for (file, _) in files {
            apply(&["-n", &team, "-f", &example_path(file)]);
        }
        for (_, name) in files {
            assert_run(&client, &team, name, &outcomes[name.as_str()], &op).await;
        }
        // Nothing of a later wave exists before this one is Healthy.
        let later: Vec<_> = waves
            .range(wave + 1..)
            .flat_map(|(_, f)| f.iter().map(|(_, n)| n.clone()))
            .collect();
        for name in later {
            let existing = Api::<RemoteCommand>::namespaced(client.clone(), &team)
                .get_opt(&name)
                .await
                .unwrap();
            assert!(
                existing.is_none(),
                "{name} was applied before wave {wave} was Healthy"
            );
        }
    }

    // clusters/: the export writes the cluster Secret Argo CD reads, in Argo CD's namespace.
    apply(&[
        "-f",
        &example_path("argocd/clusters/kubeconfig-export.yaml"),
    ]);
    let name = export["metadata"]["name"].as_str().expect("name");
    // The emulator's aks1 hands out a static user token, which `authentication: Token` keeps (the
    // swap of an AAD exec user and its expiry: aks-aad-flux in the top-level scenario).
    assert_exported(&client, &argocd_ns, name, &op).await;
    let secret_name = export["spec"]["secret"]["name"]
        .as_str()
        .expect("secret.name");
    let cluster = secret(&client, &argocd_ns, secret_name).await;
    assert_eq!(keys(&cluster), ["config", "name", "server"]);
    assert_eq!(
        label(&cluster, "argocd.argoproj.io/secret-type"),
        Some("cluster")
    );
    assert_eq!(label(&cluster, "environment"), Some("staging"));
    assert_eq!(text(&cluster, "server"), Cluster::get().server);
    let config: Value = serde_json::from_str(&text(&cluster, "config")).expect("config is JSON");
    assert!(
        config["bearerToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
            && config.get("execProviderConfig").is_none()
            && config["tlsClientConfig"]["caData"].is_string(),
        "config (a bearer token, no kubelogin): {config}"
    );
    // aks1-apps deploys to the cluster by the name the Secret registers.
    assert_eq!(
        clusters_apps[1]["spec"]["destination"]["name"],
        text(&cluster, "name").as_str(),
        "aks1-apps names the registered cluster"
    );
}

/// `examples/fleet`, the patch: the canary set runs on the two `ring: canary` clusters one at a
/// time; the prod set, applied once the canary set is Completed, runs on the six other prod
/// clusters. Each prod cluster gets the patch exactly once, no dev cluster gets it, and under Argo CD
/// the canary set's wave comes first.
#[tokio::test]
async fn fleet_patch_example_runs_the_canaries_one_at_a_time_then_the_rest_of_prod() {
    let _turn = NODE.lock().await;
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let canary = yaml("fleet/patch-1-canary.yaml");
    let prod = yaml("fleet/patch-2-prod.yaml");
    let ns = canary["metadata"]["namespace"].as_str().expect("namespace");
    assert_eq!(prod["metadata"]["namespace"], ns);
    assert_eq!(canary["spec"]["runId"], prod["spec"]["runId"]);
    let wave = |doc: &Value| -> i64 {
        doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .expect("a sync wave")
            .parse()
            .expect("a number")
    };
    assert!(
        wave(&canary) < wave(&prod),
        "the canaries go first under Argo CD"
    );

    watched_namespaces(&client, "fleet/operator-values.yaml", ns).await;
    let emulator = Emulator::start(&fleet_world(), &[]);
    let values = operator_values("fleet/operator-values.yaml", &emulator);
    let op = Installed::install_with(&client, &emulator, ns, &values).await;

    // Step 1: the canaries, one at a time.
    apply(&["-f", &example_path("fleet/patch-1-canary.yaml")]);
    let name = canary["metadata"]["name"].as_str().expect("name");
    let status =
        wait_fleet::<RemoteCommandSet>(&client, ns, name, "Completed", |_| true, &op).await;
    let canaries: BTreeSet<String> = canaries().into_iter().collect();
    assert_eq!(target_names(&status), canaries, "{status}");
    assert_eq!(status["succeeded"], CANARIES, "{status}");
    let ran = emulator.run_commands_per_cluster().await;
    assert_eq!(
        ran.keys().cloned().collect::<BTreeSet<_>>(),
        canaries,
        "step 1 ran on the canaries only: {ran:?}"
    );
    assert_eq!(
        emulator.commands_running_peak().await,
        1,
        "maxConcurrency 1: one canary at a time"
    );

    // Step 2: every other prod cluster.
    apply(&["-f", &example_path("fleet/patch-2-prod.yaml")]);
    let name = prod["metadata"]["name"].as_str().expect("name");
    let status =
        wait_fleet::<RemoteCommandSet>(&client, ns, name, "Completed", |_| true, &op).await;
    let rest: BTreeSet<String> = prod_clusters()
        .into_iter()
        .filter(|c| !canaries.contains(c))
        .collect();
    assert_eq!(target_names(&status), rest, "{status}");
    assert_eq!(status["succeeded"], PROD, "{status}");
    let ran = emulator.run_commands_per_cluster().await;
    assert_eq!(
        ran.keys().cloned().collect::<BTreeSet<_>>(),
        prod_clusters().into_iter().collect::<BTreeSet<_>>(),
        "every prod cluster and no dev cluster: {ran:?}"
    );
    assert!(
        ran.values().all(|n| *n == 1),
        "no cluster patched twice: {ran:?}"
    );
    // The children's output: the command line as written ran to its end.
    let children = Api::<RemoteCommand>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list RemoteCommands");
    assert_eq!(children.items.len(), CANARIES + PROD);
    let output = support::rcmd::output(&client, ns, &children.items[0]).await;
    assert!(output.contains("patched"), "output: {output}");
}

/// `examples/fleet`, the kubeconfigs: the Argo CD set registers every prod cluster (and no other)
/// as an Argo CD cluster Secret with the label the ApplicationSet selects; the Flux set writes each
/// prod cluster's Flux Secret, the one the example Kustomization names among them, usable by a
/// client without kubelogin. Deleting the Argo CD set unregisters its clusters.
#[tokio::test]
async fn fleet_export_examples_register_every_prod_cluster_with_argocd_and_flux() {
    let _turn = NODE.lock().await;
    let client = Cluster::get().client().await;
    install_crds(&client).await;

    // What the Argo CD and Flux objects point at.
    let argocd_set = yaml("fleet/argocd-prod-clusters.yaml");
    let appset = yaml("fleet/argocd-prod-apps.yaml");
    let argocd_ns = argocd_set["metadata"]["namespace"]
        .as_str()
        .expect("namespace");
    assert_eq!(appset["metadata"]["namespace"], argocd_ns);
    assert_eq!(argocd_set["spec"]["template"]["secret"]["format"], "ArgoCD");
    assert_eq!(
        appset["spec"]["generators"][0]["clusters"]["selector"]["matchLabels"],
        argocd_set["spec"]["template"]["secret"]["labels"],
        "the ApplicationSet selects the Secrets by the label the set puts on them"
    );
    let flux_set = yaml("fleet/flux-prod-clusters.yaml");
    let flux_apps = yaml("fleet/flux-aks-prod-01-apps.yaml");
    let platform = flux_set["metadata"]["namespace"]
        .as_str()
        .expect("namespace");
    assert_eq!(
        flux_apps["metadata"]["namespace"], platform,
        "Flux reads the Secret from the Kustomization's namespace"
    );
    assert_eq!(flux_set["spec"]["template"]["secret"]["format"], "Flux");
    let pattern = flux_set["spec"]["template"]["secret"]["namePattern"]
        .as_str()
        .expect("namePattern");
    let flux_secret = pattern.replace("{name}", "aks-prod-01");
    assert_eq!(
        flux_apps["spec"]["kubeConfig"]["secretRef"],
        json!({"name": flux_secret, "key": "value"}),
        "the Kustomization reads aks-prod-01's Secret, key `value` of the Flux format"
    );

    watched_namespaces(&client, "fleet/operator-values.yaml", platform).await;
    let emulator = Emulator::start(&fleet_world(), &[]);
    let values = operator_values("fleet/operator-values.yaml", &emulator);
    let op = Installed::install_with(&client, &emulator, platform, &values).await;
    apply(&["-f", &example_path("fleet/argocd-prod-clusters.yaml")]);
    apply(&["-f", &example_path("fleet/flux-prod-clusters.yaml")]);
    let prod = prod_clusters();
    let every_one_ready = |s: &Value| s["clusters"] == prod.len() && s["ready"] == prod.len();

    // Argo CD: one export per prod cluster, controlled by the set, each with its cluster Secret.
    let name = argocd_set["metadata"]["name"].as_str().expect("name");
    wait_fleet::<KubeconfigExportSet>(&client, argocd_ns, name, "Exported", every_one_ready, &op)
        .await;
    let exports = Api::<KubeconfigExport>::namespaced(client.clone(), argocd_ns)
        .list(&ListParams::default().labels(&format!("kubeinvoke.io/kubeconfig-export-set={name}")))
        .await
        .expect("list KubeconfigExports");
    let sources: BTreeSet<String> = exports
        .items
        .iter()
        .map(|k| {
            let owner = k
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true));
            assert_eq!(
                owner.map(|o| (o.kind.as_str(), o.name.as_str())),
                Some(("KubeconfigExportSet", name)),
                "{} is controlled by the set",
                k.name_any()
            );
            let source = serde_json::to_value(&k.spec.source).unwrap();
            source["aks"]["resourceId"]
                .as_str()
                .expect("an AKS source")
                .to_string()
        })
        .collect();
    assert_eq!(
        sources,
        prod.iter()
            .map(|c| support::emulator::aks_id(c))
            .collect::<BTreeSet<_>>()
    );
    let registered = |client: Client| async move {
        Api::<Secret>::namespaced(client, argocd_ns)
            .list(
                &ListParams::default()
                    .labels("argocd.argoproj.io/secret-type=cluster,environment=prod"),
            )
            .await
            .expect("list cluster Secrets")
            .items
    };
    let secrets = registered(client.clone()).await;
    assert_eq!(
        secrets
            .iter()
            .map(|s| s.name_any())
            .collect::<BTreeSet<_>>(),
        prod.iter()
            .map(|c| format!("cluster-rg1-{c}"))
            .collect::<BTreeSet<_>>(),
        "a cluster Secret per prod cluster, named by namePattern"
    );
    for cluster in &secrets {
        assert_eq!(keys(cluster), ["config", "name", "server"]);
        assert_eq!(
            format!("cluster-rg1-{}", text(cluster, "name")),
            cluster.name_any(),
            "Argo CD lists it under the cluster's name"
        );
        assert_eq!(text(cluster, "server"), Cluster::get().server);
        let config: Value = serde_json::from_str(&text(cluster, "config")).expect("config is JSON");
        assert!(
            config["bearerToken"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
                && config.get("execProviderConfig").is_none(),
            "{}: config (a bearer token, no kubelogin): {config}",
            cluster.name_any()
        );
    }

    // Flux: a Secret per prod cluster; the one the Kustomization names works without kubelogin.
    let name = flux_set["metadata"]["name"].as_str().expect("name");
    wait_fleet::<KubeconfigExportSet>(&client, platform, name, "Exported", every_one_ready, &op)
        .await;
    for cluster in &prod {
        let flux = secret(&client, platform, &pattern.replace("{name}", cluster)).await;
        assert_eq!(keys(&flux), ["value"]);
    }
    let kubeconfig = text(&secret(&client, platform, &flux_secret).await, "value");
    assert_token_users(&kubeconfig, &flux_secret);
    assert_kubeconfig_works(&kubeconfig, platform);

    // Deleting the Argo CD set deletes its exports and, with them, the cluster Secrets.
    let set_name = argocd_set["metadata"]["name"].as_str().expect("name");
    Api::<KubeconfigExportSet>::namespaced(client.clone(), argocd_ns)
        .delete(set_name, &DeleteParams::default())
        .await
        .expect("delete the set");
    let registered = &registered;
    wait_until(
        OUTCOME_TIMEOUT,
        "the prod clusters to be unregistered",
        || {
            let client = client.clone();
            async move { registered(client).await.is_empty().then_some(()) }
        },
    )
    .await;
    // The Flux set goes too, so that no later scenario's operator keeps exporting for it.
    Api::<KubeconfigExportSet>::namespaced(client.clone(), platform)
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete the Flux set");
}
