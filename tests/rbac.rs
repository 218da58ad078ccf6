//! The Helm chart's RBAC, proven against the real RBAC authorizer of the local kube-apiserver: the
//! operator runs whole scenarios with nothing but the chart's ServiceAccount and roles, the chart
//! grants nothing beyond [`NEEDED`], and the chart's CRDs are the generated ones.

#[path = "support/rbac.rs"]
mod rbac_support;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubeinvoke::api::RemoteCommand;
use serde_json::{Value, json};

use rbac_support::{ScopedOperator, apply, can_i, install, kubeconfig, token};
use support::emulator::{Emulator, world};
use support::helm::{Chart, Release};
use support::{Cluster, credential_secret, install_crds, namespace, rcmd, repo_root, wait_until};

/// Every grant the operator needs, as `(API group, resource, resource name or "*", verb)`, and why:
///
/// - `remotecommands`: list + watch (controller), get (re-read before writing a late ACI result),
///   delete (`spec.ttlSecondsAfterFinished`), create (a RemoteCommandSet's children);
///   `kubeconfigexports`: list + watch (controller), create + patch + delete (a
///   KubeconfigExportSet's children: server-side apply, pruning); `remotecommandsets`,
///   `kubeconfigexportsets`: list + watch (controllers).
/// - `*/status`: patch (status is written with server-side apply).
/// - `secrets`: get (credential and file Secrets, output/kubeconfig Secret ownership), create and
///   patch (server-side apply of output and kubeconfig Secrets; apply needs `create` for the first
///   write), delete (a KubeconfigExport's old Secret after `spec.secret.name` or its type changes).
/// - `configmaps`: get (`spec.files`).
/// - `serviceaccounts`: get (workload identity: the ServiceAccount a credential Secret names, read
///   by name to check its owner opted in to the client id); `serviceaccounts/token`: create (a
///   token of that ServiceAccount, in its own namespace).
/// - `events.k8s.io/events`: create, and patch when an Event repeats (kube's `Recorder`).
/// - `leases` (release namespace only): create, then get and patch of the one named Lease
///   (kube-lease-manager).
const NEEDED: &[(&str, &str, &str, &str)] = &[
    ("kubeinvoke.io", "remotecommands", "*", "get"),
    ("kubeinvoke.io", "remotecommands", "*", "list"),
    ("kubeinvoke.io", "remotecommands", "*", "watch"),
    ("kubeinvoke.io", "remotecommands", "*", "create"),
    ("kubeinvoke.io", "remotecommands", "*", "delete"),
    ("kubeinvoke.io", "kubeconfigexports", "*", "list"),
    ("kubeinvoke.io", "kubeconfigexports", "*", "watch"),
    ("kubeinvoke.io", "kubeconfigexports", "*", "create"),
    ("kubeinvoke.io", "kubeconfigexports", "*", "patch"),
    ("kubeinvoke.io", "kubeconfigexports", "*", "delete"),
    ("kubeinvoke.io", "remotecommandsets", "*", "list"),
    ("kubeinvoke.io", "remotecommandsets", "*", "watch"),
    ("kubeinvoke.io", "kubeconfigexportsets", "*", "list"),
    ("kubeinvoke.io", "kubeconfigexportsets", "*", "watch"),
    ("kubeinvoke.io", "remotecommands/status", "*", "patch"),
    ("kubeinvoke.io", "kubeconfigexports/status", "*", "patch"),
    ("kubeinvoke.io", "remotecommandsets/status", "*", "patch"),
    ("kubeinvoke.io", "kubeconfigexportsets/status", "*", "patch"),
    ("", "secrets", "*", "get"),
    ("", "secrets", "*", "create"),
    ("", "secrets", "*", "patch"),
    ("", "secrets", "*", "delete"),
    ("", "configmaps", "*", "get"),
    ("", "serviceaccounts", "*", "get"),
    ("", "serviceaccounts/token", "*", "create"),
    ("events.k8s.io", "events", "*", "create"),
    ("events.k8s.io", "events", "*", "patch"),
];
/// The same for the release namespace's Role; `{lease}` is the lease name from values.yaml.
const NEEDED_IN_RELEASE_NAMESPACE: &[(&str, &str, &str, &str)] = &[
    ("coordination.k8s.io", "leases", "*", "create"),
    ("coordination.k8s.io", "leases", "{lease}", "get"),
    ("coordination.k8s.io", "leases", "{lease}", "patch"),
    // The leader follows its own Lease to know until when it may dispatch (a single-object watch).
    ("coordination.k8s.io", "leases", "{lease}", "list"),
    ("coordination.k8s.io", "leases", "{lease}", "watch"),
];

fn release(namespace: &str) -> Release {
    Release {
        name: namespace.to_string(),
        namespace: namespace.to_string(),
    }
}

/// `(group, resource, name, verb)` of every grant in `role`; wildcards are kept as `*` so that
/// they show up as extra grants.
fn grants(role: &Value) -> BTreeSet<(String, String, String, String)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "non-resource grant: {rule}"
        );
        let names = match strings(&rule["resourceNames"]) {
            n if n.is_empty() => vec!["*".to_string()],
            n => n,
        };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for name in &names {
                    for verb in strings(&rule["verbs"]) {
                        out.insert((group.clone(), resource.clone(), name.clone(), verb));
                    }
                }
            }
        }
    }
    out
}

fn expected(
    set: &[(&str, &str, &str, &str)],
    lease: &str,
) -> BTreeSet<(String, String, String, String)> {
    set.iter()
        .map(|(g, r, n, v)| {
            (
                g.to_string(),
                r.to_string(),
                n.replace("{lease}", lease),
                v.to_string(),
            )
        })
        .collect()
}

#[test]
fn chart_crds_are_the_generated_crds() {
    let generated = std::fs::read_to_string(repo_root().join("crds/kubeinvoke.io.yaml")).unwrap();
    let chart =
        std::fs::read_to_string(repo_root().join("charts/kubeinvoke/files/crds.yaml")).unwrap();
    assert!(
        generated == chart,
        "charts/kubeinvoke/files/crds.yaml is stale: run `make crds`"
    );
}

/// The chart README's RBAC tables ("RBAC: what it grants and why") name exactly [`NEEDED`] and
/// [`NEEDED_IN_RELEASE_NAMESPACE`], which the test below holds the rendered roles to: the README
/// says what the chart grants. Needs neither Helm nor a cluster.
#[test]
fn chart_readme_rbac_tables_name_exactly_the_grants() {
    let readme = std::fs::read_to_string(repo_root().join("charts/kubeinvoke/README.md")).unwrap();
    let section = readme
        .split("## RBAC: what it grants and why")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the chart README has a section 'RBAC: what it grants and why'");
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let words = |cell: &str| -> Vec<String> {
        cell.split(" (")
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let (mut cluster, mut release) = (BTreeSet::new(), BTreeSet::new());
    let mut in_release_table = false;
    for line in section.lines() {
        if line.starts_with("| API group") {
            in_release_table = line.contains("| names |");
            continue;
        }
        if !(line.starts_with("| `") || line.starts_with("| core")) {
            continue;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        let group = ticked(cells[0]).pop().unwrap_or_default();
        let (names, verbs) = if in_release_table {
            let names = match ticked(cells[2]).as_slice() {
                [] => vec!["*".to_string()],
                [value] if value == "leaderElectionLeaseName" => vec!["{lease}".to_string()],
                other => other.to_vec(),
            };
            (names, words(cells[3].trim_end_matches(" |")))
        } else {
            (vec!["*".to_string()], words(cells[2]))
        };
        let into = if in_release_table {
            &mut release
        } else {
            &mut cluster
        };
        for resource in ticked(cells[1]) {
            for name in &names {
                for verb in &verbs {
                    into.insert((group.clone(), resource.clone(), name.clone(), verb.clone()));
                }
            }
        }
    }
    for (documented, needed, what) in [
        (cluster, expected(NEEDED, "{lease}"), "ClusterRole table"),
        (
            release,
            expected(NEEDED_IN_RELEASE_NAMESPACE, "{lease}"),
            "release-namespace Role table",
        ),
    ] {
        let extra: Vec<_> = documented.difference(&needed).collect();
        let missing: Vec<_> = needed.difference(&documented).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "chart README, {what}: documents grants the chart does not give {extra:?}, leaves out {missing:?}"
        );
    }
}

#[test]
fn chart_grants_exactly_what_the_operator_needs() {
    let chart = Chart::load();
    let release = release("ops");
    let lease = chart.values["leaderElectionLeaseName"]
        .as_str()
        .unwrap()
        .to_string();
    let cluster_role = chart.render_object("clusterrole.yaml", &release).unwrap();
    let role = chart.render_object("role.yaml", &release).unwrap();
    assert_eq!(role["metadata"]["namespace"], "ops");
    for (actual, needed, what) in [
        (
            grants(&cluster_role),
            expected(NEEDED, &lease),
            "ClusterRole",
        ),
        (
            grants(&role),
            expected(NEEDED_IN_RELEASE_NAMESPACE, &lease),
            "Role",
        ),
    ] {
        let extra: Vec<_> = actual.difference(&needed).collect();
        let missing: Vec<_> = needed.difference(&actual).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{what}: extra grants {extra:?}, missing grants {missing:?}"
        );
    }
    // The bindings give those roles to the chart's ServiceAccount, and to nobody else.
    let sa = chart
        .render_object("serviceaccount.yaml", &release)
        .unwrap();
    for (file, role) in [
        ("clusterrolebinding.yaml", &cluster_role),
        ("rolebinding.yaml", &role),
    ] {
        let binding = chart.render_object(file, &release).unwrap();
        assert_eq!(
            binding["roleRef"]["name"], role["metadata"]["name"],
            "{file}"
        );
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "ops"}]),
            "{file}"
        );
    }
}

/// The recommended install: a list of tenant namespaces. The operator's grants are a Role in each
/// (watchNamespace, the one-namespace form, joins the list), and nothing cluster-wide.
#[test]
fn watching_listed_namespaces_grants_only_in_them() {
    let mut chart = Chart::load();
    chart.with_values("watchNamespaces: [team-a, team-b]\nwatchNamespace: team-c\n");
    let release = release("ops");
    let objects = chart.template(&release);
    let lease = chart.values["leaderElectionLeaseName"].as_str().unwrap();
    let of = |file: &str| -> Vec<&Value> {
        objects
            .iter()
            .filter(|(f, _)| f == file)
            .map(|(_, v)| v)
            .collect()
    };
    let roles = of("clusterrole.yaml");
    let bindings = of("clusterrolebinding.yaml");
    let namespaces = |objects: &[&Value]| -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(namespaces(&roles), ["team-a", "team-b", "team-c"]);
    assert_eq!(namespaces(&bindings), ["team-a", "team-b", "team-c"]);
    for role in &roles {
        assert_eq!(role["kind"], "Role");
        assert_eq!(grants(role), expected(NEEDED, lease));
    }
    for binding in &bindings {
        assert_eq!(binding["kind"], "RoleBinding");
        assert_eq!(binding["roleRef"]["kind"], "Role");
    }
    let cluster_scoped: Vec<String> = objects
        .iter()
        .filter(|(file, v)| {
            file != "user-roles.yaml"
                && v["kind"].as_str().is_some_and(|k| k.starts_with("Cluster"))
        })
        .map(|(file, v)| format!("{file}: {}", v["kind"]))
        .collect();
    assert!(
        cluster_scoped.is_empty(),
        "cluster-wide grants: {cluster_scoped:?}"
    );
    let env = objects
        .iter()
        .find(|(f, _)| f == "deployment.yaml")
        .map(|(_, d)| d["spec"]["template"]["spec"]["containers"][0]["env"].clone())
        .unwrap();
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "KUBEINVOKE_WATCH_NAMESPACE"
                && e["value"] == "team-a,team-b,team-c"),
        "{env}"
    );
}

/// Where the API server has ValidatingAdmissionPolicy (Kubernetes >= 1.30), it, not the operator,
/// keeps the operator's tokens to Entra ID's exchange: the chart renders the policy there, bound
/// to deny, matching only the operator's ServiceAccount — and nothing on older clusters.
#[test]
fn the_token_audience_is_enforced_by_the_api_server_where_it_can_be() {
    let chart = Chart::load();
    let release = release("ops");
    let kinds = |version: &str| -> Vec<(String, Value)> {
        chart
            .template_with(&release, &["--kube-version", version])
            .into_iter()
            .filter(|(f, _)| f == "token-admission-policy.yaml")
            .collect()
    };
    assert!(kinds("1.29.0").is_empty(), "rendered for 1.29");
    let objects = kinds("1.30.0");
    let policy = &objects
        .iter()
        .find(|(_, v)| v["kind"] == "ValidatingAdmissionPolicy")
        .expect("a policy for 1.30")
        .1;
    let binding = &objects
        .iter()
        .find(|(_, v)| v["kind"] == "ValidatingAdmissionPolicyBinding")
        .expect("its binding")
        .1;
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    assert_eq!(
        policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"],
        json!(["serviceaccounts/token"])
    );
    let sa = chart.service_account_name(&release);
    assert_eq!(
        policy["spec"]["matchConditions"][0]["expression"],
        format!("request.userInfo.username == 'system:serviceaccount:ops:{sa}'")
    );
    let rules = policy["spec"]["validations"].to_string();
    assert!(
        rules.contains(kubeinvoke::azure::credentials::TOKEN_EXCHANGE_AUDIENCE)
            && rules.contains("request.namespace != 'ops'"),
        "{rules}"
    );
}

/// Watching the release namespace would let whoever may create RemoteCommands there name the
/// operator's own ServiceAccount and Secrets: the chart refuses it, with the reason.
#[test]
fn the_release_namespace_is_never_the_watched_one() {
    let mut chart = Chart::load();
    chart.set("watchNamespace", json!("ops"));
    let mut args = vec![
        "template".to_string(),
        "ops-release".to_string(),
        chart.package.display().to_string(),
        "--namespace".to_string(),
        "ops".to_string(),
    ];
    args.extend(chart.set_args());
    let out = support::helm::helm(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "helm template accepted it");
    assert!(
        stderr.contains("watchNamespace must not be the release namespace"),
        "{stderr}"
    );
}

/// `edit` (aggregated) lets a user manage exports and look at runs, but running a command takes the
/// separate runner role.
#[tokio::test]
async fn edit_cannot_run_commands_without_the_runner_role() {
    let admin = Cluster::get().client().await;
    install_crds(&admin).await;
    let ns = namespace(&admin, "rbac-users").await;
    let chart = Chart::load();
    let release = release(&ns);
    let roles: Vec<Value> = chart
        .template(&release)
        .into_iter()
        .filter(|(file, _)| file == "user-roles.yaml")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(roles.len(), 3);
    for role in &roles {
        apply(&admin, role).await;
    }
    let bind = |name: &str, kind: &str, role: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": name, "namespace": ns},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]})
    };
    apply(&admin, &bind("alice-edit", "ClusterRole", "edit")).await;
    let alice = |args: &[&str]| {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-n", &ns, "--as", "alice"]);
        let out = Cluster::get().kubectl(&all);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    // The controller-manager aggregates the chart's rules into `edit`.
    wait_until(
        Duration::from_secs(30),
        "edit to include the chart's rules",
        || async { alice(&["create", "kubeconfigexports.kubeinvoke.io"]).then_some(()) },
    )
    .await;
    assert!(alice(&["get", "remotecommands.kubeinvoke.io"]));
    assert!(alice(&["delete", "remotecommands.kubeinvoke.io"]));
    assert!(
        alice(&["create", "kubeconfigexportsets.kubeinvoke.io"]),
        "edit may export the kubeconfigs of a fleet, as of one cluster"
    );
    assert!(
        !alice(&["create", "remotecommands.kubeinvoke.io"]),
        "edit may run commands"
    );
    assert!(
        !alice(&["patch", "remotecommands.kubeinvoke.io"]),
        "edit may change commands"
    );
    let runner = roles
        .iter()
        .filter_map(|r| r["metadata"]["name"].as_str())
        .find(|n| n.ends_with("-runner"))
        .expect("a runner role")
        .to_string();
    apply(&admin, &bind("alice-runner", "ClusterRole", &runner)).await;
    wait_until(
        Duration::from_secs(30),
        "the runner role to apply",
        || async { alice(&["create", "remotecommands.kubeinvoke.io"]).then_some(()) },
    )
    .await;
}

#[test]
fn an_existing_service_account_gets_the_roles() {
    let mut chart = Chart::load();
    chart.set("serviceAccount.create", json!(false));
    chart.set("serviceAccount.name", json!("platform-operator"));
    let release = release("ops");
    assert_eq!(chart.render_object("serviceaccount.yaml", &release), None);
    for file in ["clusterrolebinding.yaml", "rolebinding.yaml"] {
        let binding = chart.render_object(file, &release).unwrap();
        assert_eq!(
            binding["subjects"][0]["name"], "platform-operator",
            "{file}"
        );
    }
}

#[tokio::test]
async fn service_account_is_refused_what_the_chart_does_not_grant() {
    let admin = Cluster::get().client().await;
    install_crds(&admin).await;
    let ns = namespace(&admin, "rbac-deny").await;
    let chart = Chart::load();
    let release = release(&ns);
    install(&admin, &chart, &release).await;
    let sa = chart.service_account_name(&release);
    let lease = chart.values["leaderElectionLeaseName"]
        .as_str()
        .unwrap()
        .to_string();
    // What it may do (so that a broken `can-i` cannot make the refusals below pass)...
    for args in [
        vec!["get", "secrets", "-n", "default"],
        vec![
            "patch",
            "remotecommands.kubeinvoke.io",
            "--subresource=status",
            "-n",
            "default",
        ],
        vec!["create", "events.events.k8s.io", "-n", "default"],
        vec![
            "patch",
            &format!("leases.coordination.k8s.io/{lease}"),
            "-n",
            &ns,
        ],
    ] {
        assert!(can_i(&ns, &sa, &args), "should be allowed: {args:?}");
    }
    // ...and what it may not.
    let other_lease = "leases.coordination.k8s.io/someone-else".to_string();
    for args in [
        vec!["list", "secrets", "--all-namespaces"],
        vec!["watch", "secrets", "-n", "default"],
        vec!["update", "secrets", "-n", "default"],
        vec!["create", "pods", "-n", "default"],
        vec!["create", "pods", "-n", &ns],
        vec!["list", "configmaps", "-n", "default"],
        vec!["delete", "configmaps", "-n", "default"],
        // It creates a RemoteCommandSet's children, but never changes a run's spec.
        vec!["patch", "remotecommands.kubeinvoke.io", "-n", "default"],
        vec!["update", "remotecommands.kubeinvoke.io", "-n", "default"],
        vec!["create", "remotecommandsets.kubeinvoke.io", "-n", "default"],
        vec![
            "update",
            "remotecommands.kubeinvoke.io",
            "--subresource=status",
            "-n",
            "default",
        ],
        vec!["get", "kubeconfigexports.kubeinvoke.io", "-n", "default"],
        // It manages a KubeconfigExportSet's children, but never replaces a spec wholesale nor
        // creates a fleet.
        vec!["update", "kubeconfigexports.kubeinvoke.io", "-n", "default"],
        vec![
            "create",
            "kubeconfigexportsets.kubeinvoke.io",
            "-n",
            "default",
        ],
        vec![
            "patch",
            "kubeconfigexportsets.kubeinvoke.io",
            "-n",
            "default",
        ],
        vec!["create", "leases.coordination.k8s.io", "-n", "default"],
        vec!["patch", &other_lease, "-n", &ns],
        vec!["delete", "leases.coordination.k8s.io", "-n", &ns],
        vec!["create", "events", "-n", "default"],
        vec!["list", "namespaces"],
        vec!["get", "nodes"],
        vec!["create", "clusterrolebindings"],
        vec!["impersonate", "serviceaccounts", "-n", &ns],
        vec!["get", "/metrics"],
    ] {
        assert!(!can_i(&ns, &sa, &args), "should be refused: {args:?}");
    }
}

#[tokio::test]
async fn operator_runs_commands_and_exports_with_only_the_chart_rbac() {
    let admin = Cluster::get().client().await;
    install_crds(&admin).await;
    let release_ns = namespace(&admin, "rbac-release").await;
    let ns = namespace(&admin, "rbac-work").await;
    credential_secret(&admin, &ns, "kubeinvoke-credentials").await;
    let chart = Chart::load();
    let release = release(&release_ns);
    install(&admin, &chart, &release).await;
    let sa = chart.service_account_name(&release);
    let lease = chart.values["leaderElectionLeaseName"]
        .as_str()
        .unwrap()
        .to_string();
    let kubeconfig = kubeconfig(&token(&admin, &release_ns, &sa).await);
    let emulator = Emulator::start(&world("", ""), &[]);
    let operator = ScopedOperator::start(&emulator, &kubeconfig, &ns, &release_ns, &lease);

    // Leader election: the Lease in the release namespace, held by this operator.
    let leases = Api::<Lease>::namespaced(admin.clone(), &release_ns);
    wait_until(
        Duration::from_secs(30),
        "the leader Lease to be held",
        || {
            let leases = leases.clone();
            let lease = lease.clone();
            async move {
                let l = leases.get_opt(&lease).await.ok()??;
                l.spec?.holder_identity.filter(|h| !h.is_empty())
            }
        },
    )
    .await;

    // RemoteCommand with ConfigMap files: Succeeded, output Secret, Events.
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "manifests"}, "data": {"a.txt": "alpha\n"}}),
    )
    .unwrap();
    Api::<ConfigMap>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let mut spec = rcmd::aks("aks1", "cat a.txt");
    spec["files"] = json!([{"configMapRef": {"name": "manifests"}}]);
    rcmd::create(&admin, &ns, "files", spec).await;
    let rc = rcmd::wait_finished(&admin, &ns, "files").await;
    assert_eq!(
        rcmd::outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(rcmd::output(&admin, &ns, &rc).await, "alpha\n");
    let events = rcmd::events(&ns);
    assert!(
        events.contains("Dispatched") && events.contains("Completed"),
        "{events}"
    );

    // ttlSecondsAfterFinished: the operator deletes the finished RemoteCommand.
    let mut spec = rcmd::aks("aks1", "true");
    spec["ttlSecondsAfterFinished"] = json!(1);
    rcmd::create(&admin, &ns, "short-lived", spec).await;
    let commands = Api::<RemoteCommand>::namespaced(admin.clone(), &ns);
    wait_until(
        Duration::from_secs(60),
        "short-lived to be deleted after its TTL",
        || {
            let commands = commands.clone();
            async move { matches!(commands.get_opt("short-lived").await, Ok(None)).then_some(()) }
        },
    )
    .await;

    // KubeconfigExport: Ready with its Secret; renaming the Secret deletes the old one.
    let exports = Api::<kubeinvoke::api::KubeconfigExport>::namespaced(admin.clone(), &ns);
    let export: kubeinvoke::api::KubeconfigExport = serde_json::from_value(json!({
        "apiVersion": "kubeinvoke.io/v1alpha1",
        "kind": "KubeconfigExport",
        "metadata": {"name": "edge"},
        "spec": support::kcx::spec(support::kcx::aks("aks1", "User"), "edge-a", "Kubeconfig"),
    }))
    .unwrap();
    exports
        .create(&PostParams::default(), &export)
        .await
        .unwrap();
    wait_export_ready(&exports, 1).await;
    let secrets = Api::<Secret>::namespaced(admin.clone(), &ns);
    assert!(secrets.get_opt("edge-a").await.unwrap().is_some());
    exports
        .patch(
            "edge",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"secret": {"name": "edge-b"}}})),
        )
        .await
        .unwrap();
    wait_export_ready(&exports, 2).await;
    assert!(secrets.get_opt("edge-b").await.unwrap().is_some());
    wait_until(
        Duration::from_secs(30),
        "the old Secret edge-a to be deleted",
        || {
            let secrets = secrets.clone();
            async move { matches!(secrets.get_opt("edge-a").await, Ok(None)).then_some(()) }
        },
    )
    .await;

    // Nothing was refused along the way.
    let logs = operator.logs();
    assert!(
        !logs.to_ascii_lowercase().contains("forbidden"),
        "the operator was refused something:\n{logs}"
    );
}

async fn wait_export_ready(exports: &Api<kubeinvoke::api::KubeconfigExport>, generation: i64) {
    wait_until(
        Duration::from_secs(60),
        &format!("KubeconfigExport edge generation {generation} to be Ready"),
        || {
            let exports = exports.clone();
            async move {
                let k = exports.get("edge").await.ok()?;
                let s = k.status?;
                let ready = s
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (s.observed_generation == generation && ready).then_some(())
            }
        },
    )
    .await;
}
