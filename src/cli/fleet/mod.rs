//! Fleet mode of `kubectl invoke aks|aci`: with `--id` (repeatable), or `--subscription` with
//! `--selector`/`--all`, the CLI creates a RemoteCommandSet (one child RemoteCommand per target),
//! prints a line per target as it finishes and a summary, and exits 0 only when every target
//! succeeded. A single positional resource id keeps the single-run mode.

mod follow;
mod report;
pub mod selector;

pub use follow::wait_and_report;

use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Resource, ResourceExt};

use super::{Error, RunArgs, files};
use crate::api::remote_command::FileSource;
use crate::api::remote_command_set::{
    ArmSelector, FleetResourceType, FleetTargets, RemoteCommandSet, RemoteCommandSetSpec,
};

/// What makes a run a fleet run, and how fast it goes.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Fleet run (a RemoteCommandSet)")]
pub struct FleetArgs {
    /// A target's full resource id (repeatable); with --selector, added to what it selects.
    #[arg(long = "id", value_name = "RESOURCE_ID")]
    pub ids: Vec<String>,
    /// Every resource of --subscription (and --resource-group) whose ARM tags match, written as a
    /// kubectl label selector: env=prod,tier!=frozen,region in (eu,us),owner,!legacy.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Every resource of --subscription (and --resource-group), whatever its tags.
    #[arg(long, conflicts_with = "selector")]
    pub all: bool,
    /// At most this many targets pending or running at once: a number or a percentage of the
    /// targets, e.g. 10% (default 50).
    #[arg(long, value_name = "N|P%", value_parser = parse_concurrency)]
    pub max_concurrency: Option<IntOrString>,
    /// Failed targets tolerated before no new one is launched: a number or a percentage (default
    /// 0: the first failure stops launching).
    #[arg(long, value_name = "N|P%", value_parser = parse_errors)]
    pub max_errors: Option<IntOrString>,
}

/// Where a run goes: one target, or a fleet.
#[derive(Debug, PartialEq)]
pub enum Mode {
    Single(String),
    Fleet(FleetTargets),
}

/// What the command line names as targets, as given.
pub struct Named<'a> {
    pub kind: FleetResourceType,
    pub positional: Option<&'a str>,
    pub subscriptions: &'a [String],
    pub resource_groups: &'a [String],
    /// `--name` (AKS only).
    pub name: Option<&'a str>,
}

/// Single run or fleet, from the flags: `--id`, `--selector` or `--all` make a fleet; a positional
/// id, or `--subscription -g --name`, one run, exactly as before fleet mode existed.
pub fn mode(n: &Named<'_>, fleet: &FleetArgs, run: &RunArgs) -> Result<Mode, String> {
    let mode = targets(n, fleet)?;
    if matches!(mode, Mode::Fleet(_)) && run.ttl.is_some() {
        return Err(
            "--ttl is for single runs: a fleet run is kept until its RemoteCommandSet is deleted \
             (kubectl delete rcmdset NAME deletes its RemoteCommands and their output with it)"
                .into(),
        );
    }
    Ok(mode)
}

fn targets(n: &Named<'_>, fleet: &FleetArgs) -> Result<Mode, String> {
    let what = match n.kind {
        FleetResourceType::ManagedClusters => "cluster",
        FleetResourceType::ContainerGroups => "container group",
    };
    let listing = fleet.selector.is_some() || fleet.all;
    if fleet.ids.is_empty() && !listing {
        if fleet.max_concurrency.is_some() || fleet.max_errors.is_some() {
            return Err(
                "--max-concurrency and --max-errors are for fleet runs (--id, or --subscription with --selector or --all)"
                    .into(),
            );
        }
        return match (n.positional, n.subscriptions, n.resource_groups, n.name) {
            (Some(id), [], [], None) => Ok(Mode::Single(id.to_string())),
            (None, [sub], [rg], Some(name)) => Ok(Mode::Single(format!(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"
            ))),
            (None, [_, ..], _, None) => Err(format!(
                "--subscription without --name lists every {what} of the scope: add --selector (e.g. env=prod), or --all"
            )),
            _ if n.kind == FleetResourceType::ManagedClusters => Err(
                "name the cluster by its resource id, or by --subscription, --resource-group and --name; \
                 several clusters: --id for each, or --subscription with --selector"
                    .into(),
            ),
            _ => Err(
                "name the container group by its resource id; several: --id for each, or --subscription with --selector"
                    .into(),
            ),
        };
    }
    if let Some(id) = n.positional {
        return Err(format!(
            "{id}: a fleet run takes its targets from --id, --selector or --all; give this one as --id"
        ));
    }
    if n.name.is_some() {
        return Err("--name names one cluster; a fleet run takes --id, --selector or --all".into());
    }
    let mut targets = FleetTargets {
        resource_type: n.kind,
        resource_ids: fleet.ids.clone(),
        selector: None,
    };
    if !listing {
        if !n.subscriptions.is_empty() || !n.resource_groups.is_empty() {
            return Err(format!(
                "--subscription and --resource-group in a fleet run say where to list: add --selector or --all \
                 (the {what}s of --id are already whole resource ids)"
            ));
        }
        return Ok(Mode::Fleet(targets));
    }
    if n.subscriptions.is_empty() {
        return Err("--selector and --all list resources in --subscription (repeatable), optionally narrowed by --resource-group".into());
    }
    let mut arm = ArmSelector {
        subscriptions: n.subscriptions.to_vec(),
        resource_groups: n.resource_groups.to_vec(),
        ..Default::default()
    };
    if let Some(text) = &fleet.selector {
        selector::parse(text, &mut arm)?;
    }
    targets.selector = Some(arm);
    Ok(Mode::Fleet(targets))
}

/// What a container group fleet adds to the template.
pub struct Container {
    pub name: String,
    pub shell: Option<String>,
}

/// Creates the RemoteCommandSet (and the ConfigMaps of its files, owned by it), then follows it
/// unless `--no-wait`.
pub async fn submit(
    client: &Client,
    namespace: &str,
    targets: FleetTargets,
    fleet: &FleetArgs,
    run: &RunArgs,
    container: Option<Container>,
    files: Vec<files::Bundle>,
) -> Result<u8, Error> {
    let names: Vec<String> = (0..files.len())
        .map(|i| format!("invoke-files-{}-{i}", super::short_random()))
        .collect();
    let file_sources: Vec<FileSource> = files
        .iter()
        .zip(&names)
        .map(|(bundle, name)| FileSource {
            config_map_ref: Some(bundle.reference(name)),
            secret_ref: None,
        })
        .collect();
    let mut template = serde_json::json!({
        "command": run.command,
        "timeoutSeconds": run.timeout.as_secs().clamp(1, 86_400),
        "files": file_sources,
    });
    if let Some(c) = container {
        template["container"] = c.name.into();
        if let Some(shell) = c.shell {
            template["shell"] = shell.into();
        }
    }
    if let Some(name) = &run.credential {
        template["credentialRef"] = serde_json::json!({ "name": name });
    }
    let mut spec = serde_json::json!({ "template": template, "targets": targets });
    if let Some(id) = &run.run_id {
        spec["runId"] = id.clone().into();
    }
    if let Some(c) = &fleet.max_concurrency {
        spec["maxConcurrency"] = serde_json::to_value(c)?;
    }
    if let Some(e) = &fleet.max_errors {
        spec["maxErrors"] = serde_json::to_value(e)?;
    }
    let spec: RemoteCommandSetSpec =
        serde_json::from_value(spec).map_err(|e| format!("invalid fleet run: {e}"))?;
    let mut set = RemoteCommandSet::new("", spec);
    set.metadata = ObjectMeta {
        generate_name: Some("invoke-fleet-".into()),
        namespace: Some(namespace.to_string()),
        labels: Some(
            [(
                "app.kubernetes.io/created-by".to_string(),
                "kubectl-invoke".to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    let api: Api<RemoteCommandSet> = Api::namespaced(client.clone(), namespace);
    let set = api
        .create(&PostParams::default(), &set)
        .await
        .map_err(|e| format!("creating the RemoteCommandSet in namespace {namespace}: {e}"))?;
    let name = set.name_any();
    let owner = set
        .controller_owner_ref(&())
        .ok_or("the created RemoteCommandSet has no uid")?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for (bundle, cm_name) in files.into_iter().zip(names) {
        configmaps
            .create(&PostParams::default(), &bundle.into_config_map(&cm_name, owner.clone()))
            .await
            .map_err(|e| format!("creating ConfigMap {cm_name} for {name}: {e} (its targets wait for it until their timeout)"))?;
    }
    if run.no_wait {
        println!("{name}");
        return Ok(0);
    }
    eprintln!("remotecommandset {namespace}/{name} created");
    follow::wait_and_report(client, namespace, &name, run.output, true).await
}

/// `--max-concurrency`: a number of at least one, or a percentage.
fn parse_concurrency(text: &str) -> Result<IntOrString, String> {
    match parse_limit(text)? {
        IntOrString::Int(0) => Err("--max-concurrency must be at least 1 (or a percentage)".into()),
        limit => Ok(limit),
    }
}

/// `--max-errors`: a number, or a percentage.
fn parse_errors(text: &str) -> Result<IntOrString, String> {
    parse_limit(text)
}

fn parse_limit(text: &str) -> Result<IntOrString, String> {
    let bad = || format!("'{text}' is neither a number nor a percentage (e.g. 5 or 10%)");
    if let Some(percent) = text.strip_suffix('%') {
        let p: u8 = percent.parse().map_err(|_| bad())?;
        return match p {
            0..=100 => Ok(IntOrString::String(format!("{p}%"))),
            _ => Err(bad()),
        };
    }
    text.parse::<u16>()
        .map(|n| IntOrString::Int(i32::from(n)))
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::remote_command_set::TagOperator;
    use crate::cli::{InvokeArgs, InvokeCommand};
    use clap::Parser;

    fn named<'a>(positional: Option<&'a str>, subs: &'a [String], rgs: &'a [String]) -> Named<'a> {
        Named {
            kind: FleetResourceType::ManagedClusters,
            positional,
            subscriptions: subs,
            resource_groups: rgs,
            name: None,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_id_is_a_single_run_as_before() {
        let none = FleetArgs::default();
        assert_eq!(
            targets(&named(Some("/x"), &[], &[]), &none),
            Ok(Mode::Single("/x".into()))
        );
        let (subs, rgs) = (strings(&["s"]), strings(&["rg"]));
        let mut az = named(None, &subs, &rgs);
        az.name = Some("prod");
        match targets(&az, &none) {
            Ok(Mode::Single(id)) => assert!(id.ends_with(
                "/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/prod"
            )),
            other => panic!("{other:?}"),
        }
        let limited = FleetArgs {
            max_errors: Some(IntOrString::Int(1)),
            ..Default::default()
        };
        assert!(targets(&named(Some("/x"), &[], &[]), &limited).is_err());
    }

    #[test]
    fn ids_selector_or_all_make_a_fleet() {
        let ids = FleetArgs {
            ids: strings(&["/a", "/b"]),
            ..Default::default()
        };
        let Ok(Mode::Fleet(t)) = targets(&named(None, &[], &[]), &ids) else {
            panic!()
        };
        assert_eq!(t.resource_ids, ["/a", "/b"]);
        assert!(t.selector.is_none());
        let (subs, rgs) = (strings(&["s1", "s2"]), strings(&["rg"]));
        let selected = FleetArgs {
            selector: Some("env=prod,tier notin (frozen)".into()),
            ..ids.clone()
        };
        let Ok(Mode::Fleet(t)) = targets(&named(None, &subs, &rgs), &selected) else {
            panic!()
        };
        let s = t.selector.unwrap();
        assert_eq!(s.subscriptions, ["s1", "s2"]);
        assert_eq!(s.resource_groups, ["rg"]);
        assert_eq!(s.match_tags["env"], "prod");
        assert_eq!(s.match_expressions[0].operator, TagOperator::NotIn);
        assert_eq!(t.resource_ids.len(), 2, "--id adds to the selection");
        let all = FleetArgs {
            all: true,
            ..Default::default()
        };
        let Ok(Mode::Fleet(t)) = targets(&named(None, &subs, &[]), &all) else {
            panic!()
        };
        let s = t.selector.unwrap();
        assert!(s.match_tags.is_empty() && s.match_expressions.is_empty());
    }

    #[test]
    fn ambiguous_or_unscoped_command_lines_are_refused() {
        let subs = strings(&["s"]);
        let none = FleetArgs::default();
        // A subscription alone would mean every cluster of it: say so with --all.
        let e = targets(&named(None, &subs, &[]), &none).unwrap_err();
        assert!(e.contains("--all"), "{e}");
        let selected = FleetArgs {
            selector: Some("env=prod".into()),
            ..Default::default()
        };
        assert!(
            targets(&named(None, &[], &[]), &selected).is_err(),
            "no scope"
        );
        assert!(targets(&named(Some("/x"), &subs, &[]), &selected).is_err());
        let ids = FleetArgs {
            ids: strings(&["/a"]),
            ..Default::default()
        };
        assert!(targets(&named(None, &subs, &[]), &ids).is_err());
        assert!(targets(&named(None, &[], &[]), &none).is_err());
    }

    /// Every single-run command line of before fleet mode parses as it did.
    #[test]
    fn single_run_command_lines_are_unchanged() {
        for line in [
            &["aks", "/id", "-c", "true"][..],
            &[
                "aks",
                "--subscription",
                "s",
                "-g",
                "rg",
                "--name",
                "n",
                "-c",
                "true",
            ],
            &[
                "aci",
                "/cg",
                "--container",
                "app",
                "--shell",
                "/bin/sh",
                "-c",
                "true",
            ],
        ] {
            let args = InvokeArgs::try_parse_from(
                std::iter::once("kubectl-invoke").chain(line.iter().copied()),
            )
            .unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let mode = match &args.command {
                InvokeCommand::Aks(a) => mode(&a.targets(), &a.fleet, &a.run),
                InvokeCommand::Aci(a) => mode(&a.targets(), &a.fleet, &a.run),
                _ => unreachable!(),
            };
            assert!(matches!(mode, Ok(Mode::Single(_))), "{line:?}");
        }
    }

    /// `--ttl` belongs to single runs; a fleet run refuses it before anything is created.
    #[test]
    fn ttl_is_refused_in_fleet_mode_only() {
        let parse = |line: &[&str]| {
            let args = InvokeArgs::try_parse_from(
                std::iter::once("kubectl-invoke").chain(line.iter().copied()),
            )
            .unwrap();
            match args.command {
                InvokeCommand::Aks(a) => mode(&a.targets(), &a.fleet, &a.run),
                _ => unreachable!(),
            }
        };
        assert!(parse(&["aks", "/id", "--ttl", "5m", "-c", "true"]).is_ok());
        let e = parse(&["aks", "--id", "/id", "--ttl", "5m", "-c", "true"]).unwrap_err();
        assert!(e.contains("--ttl"), "{e}");
        assert!(parse(&["aks", "--id", "/id", "-c", "true"]).is_ok());
    }

    #[test]
    fn limits_are_numbers_or_percentages() {
        assert_eq!(parse_concurrency("5"), Ok(IntOrString::Int(5)));
        assert_eq!(
            parse_concurrency("10%"),
            Ok(IntOrString::String("10%".into()))
        );
        assert_eq!(parse_errors("0"), Ok(IntOrString::Int(0)));
        assert_eq!(parse_errors("0%"), Ok(IntOrString::String("0%".into())));
        for bad in ["0", "-1", "101%", "ten", "%", "5.5"] {
            assert!(parse_concurrency(bad).is_err(), "{bad}");
        }
    }
}
