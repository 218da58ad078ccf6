//! `kubectl invoke` (and `kubeinvoke run`): the command line for pipelines and people. It talks only
//! to the management cluster — it creates a RemoteCommand (or, for a fleet, a RemoteCommandSet),
//! watches it, prints its output and exits with the remote exit code — and never to Azure.

pub mod complete;
mod files;
pub mod fleet;
mod follow;
mod kubeconfig;
mod list;
mod result;

pub use follow::ACK_TIMEOUT;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum, ValueHint};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Resource, ResourceExt};

use crate::api::remote_command::{FileSource, RemoteCommand, RemoteCommandSpec};
use crate::api::remote_command_set::FleetResourceType;
use crate::api::{CredentialRef, Phase};

/// Exit codes of the CLI when the remote command did not run to an exit code of its own
/// (0–255 is the remote exit code). Documented in docs/cli.md.
pub mod exit {
    /// Ctrl-C while waiting (the run goes on in the cluster).
    pub const INTERRUPTED: u8 = 130;
    /// The CLI itself failed: bad arguments, the management cluster unreachable, not allowed.
    pub const CLI_ERROR: u8 = 240;
    /// The run was refused before it was sent: spec, credential, files, target, permission.
    pub const REFUSED: u8 = 241;
    /// AKS could not start the command (`CommandDidNotStart`, `AdmissionDenied`): it did not run.
    pub const DID_NOT_START: u8 = 242;
    /// It is unknown whether the command ran (`DispatchInterrupted`, `SessionInterrupted`,
    /// `ResultUnavailable`).
    pub const UNKNOWN: u8 = 243;
    /// `timeoutSeconds` passed (`DeadlineExceeded`): it may still be running, or never started.
    pub const DEADLINE: u8 = 244;
    /// No operator answered a run the CLI created: it was withdrawn, never sent.
    pub const NO_OPERATOR: u8 = 245;
    /// A fleet run finished and not every target succeeded (some failed, or were not started).
    pub const TARGETS_FAILED: u8 = 246;
}

/// Run commands on private AKS clusters and Azure Container Instances through kubeinvoke, from the
/// management cluster: create a RemoteCommand, wait for it, print its output, exit with its exit code.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-invoke",
    bin_name = "kubectl invoke",
    version,
    after_help = "Examples:\n  \
      kubectl invoke aks /subscriptions/$SUB/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/prod \\\n      --command 'kubectl apply -f deploy/' --file deploy\n  \
      kubectl invoke aks --subscription $SUB -g rg --name prod --command 'kubectl get nodes' -n team-a\n  \
      kubectl invoke aci /subscriptions/$SUB/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/app \\\n      --container app --shell /bin/sh --command 'df -h /'\n  \
      kubectl invoke aks --subscription $SUB --selector 'env=prod,tier!=frozen' --max-concurrency 10% --command 'kubectl get nodes'\n  \
      kubectl invoke result invoke-x7k2p\n  \
      kubectl invoke ls -A\n  \
      kubectl invoke kubeconfig prod-admin --output-file prod.kubeconfig\n\n\
      Exit status: the remote command's exit code when it ran; otherwise 241 refused before it was sent,\n\
      242 did not start, 243 unknown whether it ran, 244 timed out, 245 no operator answered,\n\
      240 CLI error, 130 interrupted. A fleet run (--id, --selector, --all): 0 when every target succeeded,\n\
      246 when it finished and not every target did, 241 refused before any target was launched,\n\
      244 no progress within a target's timeout, 245 no operator answered."
)]
pub struct InvokeArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(subcommand)]
    pub command: InvokeCommand,
}

/// Which management cluster and namespace (as kubectl takes them).
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true, value_hint = ValueHint::FilePath)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace of the RemoteCommand (default: the context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum InvokeCommand {
    /// Run a command on an AKS cluster (like `az aks command invoke`).
    Aks(AksArgs),
    /// Run a command in an Azure Container Instances container (like `az container exec`).
    Aci(AciArgs),
    /// Wait for an existing run and print its output (like `az aks command result`).
    Result(ResultArgs),
    /// List runs with their phase and reason.
    Ls(LsArgs),
    /// Write the kubeconfig of a KubeconfigExport to a file (or stdout), whatever its Secret format.
    Kubeconfig(KubeconfigArgs),
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What every run takes.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The command line to run.
    #[arg(short = 'c', long)]
    pub command: String,
    /// Give up after this long (e.g. 90s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Credential Secret in the namespace (default: kubeinvoke-credentials).
    #[arg(long)]
    pub credential: Option<String>,
    /// spec.runId (a new one runs the same spec again).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Delete the run, its output and its file ConfigMaps this long after it finished (e.g. 30m,
    /// 1h, 168h; default 1h); 0 or none keeps them. Single runs only: a fleet run is kept until its
    /// RemoteCommandSet is deleted.
    #[arg(long, value_parser = parse_ttl)]
    pub ttl: Option<Ttl>,
    /// Create the run, print its name and exit.
    #[arg(long)]
    pub no_wait: bool,
    /// text: the output as is (a fleet: a line per target); json or yaml: the outcome with the
    /// output (a fleet: every target's outcome and output Secret).
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct AksArgs {
    /// The cluster's full resource id (or --subscription, --resource-group and --name; several
    /// clusters: --id for each, or --subscription with --selector).
    pub cluster: Option<String>,
    /// The cluster's subscription; for a fleet run, one to list clusters in (repeatable).
    #[arg(long)]
    pub subscription: Vec<String>,
    /// The cluster's resource group; for a fleet run, list only in these (repeatable).
    #[arg(short = 'g', long)]
    pub resource_group: Vec<String>,
    /// The cluster's name (with --subscription and --resource-group).
    #[arg(long)]
    pub name: Option<String>,
    /// A file or directory to send along (repeatable); `.` sends the current directory. Paths are
    /// kept relative to the current directory.
    #[arg(short = 'f', long = "file", value_hint = ValueHint::AnyPath)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub fleet: fleet::FleetArgs,
}

#[derive(Args, Debug)]
pub struct AciArgs {
    /// The container group's full resource id (several: --id for each, or --subscription with
    /// --selector).
    pub container_group: Option<String>,
    /// The container to exec in.
    #[arg(long)]
    pub container: String,
    /// Run the command line through this shell (gives the real exit code), e.g. /bin/sh.
    #[arg(long)]
    pub shell: Option<String>,
    /// For a fleet run: a subscription to list container groups in (repeatable).
    #[arg(long)]
    pub subscription: Vec<String>,
    /// For a fleet run: list only in these resource groups (repeatable).
    #[arg(short = 'g', long)]
    pub resource_group: Vec<String>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub fleet: fleet::FleetArgs,
}

impl AksArgs {
    /// The targets as the command line names them.
    pub fn targets(&self) -> fleet::Named<'_> {
        fleet::Named {
            kind: FleetResourceType::ManagedClusters,
            positional: self.cluster.as_deref(),
            subscriptions: &self.subscription,
            resource_groups: &self.resource_group,
            name: self.name.as_deref(),
        }
    }
}

impl AciArgs {
    /// The targets as the command line names them.
    pub fn targets(&self) -> fleet::Named<'_> {
        fleet::Named {
            kind: FleetResourceType::ContainerGroups,
            positional: self.container_group.as_deref(),
            subscriptions: &self.subscription,
            resource_groups: &self.resource_group,
            name: None,
        }
    }
}

#[derive(Args, Debug)]
pub struct ResultArgs {
    /// The RemoteCommand's or RemoteCommandSet's name (`rcmd/NAME` or `rcmdset/NAME` to say which).
    pub name: String,
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct KubeconfigArgs {
    /// The KubeconfigExport's name.
    pub name: String,
    /// Write to this file, created mode 0600 (default: stdout).
    #[arg(long = "output-file", value_hint = ValueHint::FilePath)]
    pub file: Option<PathBuf>,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// List the runs of every namespace (that you may list).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// How long a finished run the CLI created is kept (`spec.ttlSecondsAfterFinished`); `None` keeps
/// it until someone deletes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(pub Option<Duration>);

/// Default of `--ttl`: long enough to come back for a result, short enough that runs a pipeline
/// makes by the thousand do not pile up.
pub const DEFAULT_TTL: &str = "1h";
const DEFAULT_TTL_VALUE: Ttl = Ttl(Some(Duration::from_secs(3600)));

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// The output, byte for byte.
    Text,
    /// The outcome (phase, reason, exit code, ids) with the output.
    Json,
    /// The same as json, in YAML.
    Yaml,
}

/// Runs the CLI; the exit code is the remote exit code or one of [`exit`].
pub async fn run(args: InvokeArgs) -> ExitCode {
    match execute(args).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("kubectl invoke: {e}");
            ExitCode::from(exit::CLI_ERROR)
        }
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn execute(args: InvokeArgs) -> Result<u8, Error> {
    if let InvokeCommand::Completion { shell } = args.command {
        let mut command = InvokeArgs::command();
        clap_complete::generate(
            shell,
            &mut command,
            "kubectl-invoke",
            &mut std::io::stdout(),
        );
        return Ok(0);
    }
    // The command line is judged before the management cluster is reached.
    let mode = match &args.command {
        InvokeCommand::Aks(a) => Some(fleet::mode(&a.targets(), &a.fleet, &a.run)?),
        InvokeCommand::Aci(a) => Some(fleet::mode(&a.targets(), &a.fleet, &a.run)?),
        _ => None,
    };
    let (client, namespace) = connect(&args.cluster).await?;
    match args.command {
        InvokeCommand::Aks(a) => {
            let Some(mode) = mode else {
                unreachable!("judged above")
            };
            let files = files::collect(&a.files, &std::env::current_dir()?)?;
            if !files.is_empty() {
                eprintln!(
                    "note: --file content travels in ConfigMaps of {namespace}, which the view role can read: send no secrets this way"
                );
            }
            match mode {
                fleet::Mode::Single(id) => {
                    let spec = serde_json::json!({ "target": { "aks": { "resourceId": id } } });
                    submit(&client, &namespace, spec, &a.run, files).await
                }
                fleet::Mode::Fleet(targets) => {
                    fleet::submit(&client, &namespace, targets, &a.fleet, &a.run, None, files).await
                }
            }
        }
        InvokeCommand::Aci(a) => {
            let Some(mode) = mode else {
                unreachable!("judged above")
            };
            match mode {
                fleet::Mode::Single(id) => {
                    let mut target =
                        serde_json::json!({ "resourceId": id, "container": a.container });
                    if let Some(shell) = a.shell {
                        target["shell"] = shell.into();
                    }
                    let spec = serde_json::json!({ "target": { "containerInstance": target } });
                    submit(&client, &namespace, spec, &a.run, Vec::new()).await
                }
                fleet::Mode::Fleet(targets) => {
                    let container = fleet::Container {
                        name: a.container,
                        shell: a.shell,
                    };
                    let run = &a.run;
                    fleet::submit(
                        &client,
                        &namespace,
                        targets,
                        &a.fleet,
                        run,
                        Some(container),
                        Vec::new(),
                    )
                    .await
                }
            }
        }
        InvokeCommand::Result(r) => result::reattach(&client, &namespace, &r).await,
        InvokeCommand::Ls(l) => list::print(&client, &namespace, l.all_namespaces).await,
        InvokeCommand::Kubeconfig(k) => kubeconfig::write(&client, &namespace, &k).await,
        InvokeCommand::Completion { .. } => unreachable!("handled above"),
    }
}

/// A client for the management cluster and the namespace to use, as kubectl would pick them.
pub(crate) async fn connect(args: &ClusterArgs) -> Result<(Client, String), Error> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        None => match kube::Config::from_kubeconfig(&options).await {
            Ok(config) => config,
            Err(_) if args.context.is_none() => kube::Config::infer().await?,
            Err(e) => return Err(e.into()),
        },
    };
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    Ok((Client::try_from(config)?, namespace))
}

/// Creates the RemoteCommand (and the ConfigMaps holding its files, owned by it), then waits for
/// it unless `--no-wait`.
async fn submit(
    client: &Client,
    namespace: &str,
    mut spec: serde_json::Value,
    run: &RunArgs,
    files: Vec<files::Bundle>,
) -> Result<u8, Error> {
    spec["command"] = run.command.clone().into();
    spec["timeoutSeconds"] = run.timeout.as_secs().clamp(1, 86_400).into();
    // A run this CLI gave up on must not start much later (the CLI also withdraws it when no
    // operator answers, but it may be killed before it can).
    spec["startingDeadlineSeconds"] = run.timeout.as_secs().clamp(1, 86_400).into();
    if let Some(id) = &run.run_id {
        spec["runId"] = id.clone().into();
    }
    if let Ttl(Some(ttl)) = run.ttl.unwrap_or(DEFAULT_TTL_VALUE) {
        spec["ttlSecondsAfterFinished"] = ttl.as_secs().into();
    }
    let mut spec: RemoteCommandSpec =
        serde_json::from_value(spec).map_err(|e| format!("invalid run: {e}"))?;
    spec.credential_ref = run.credential.clone().map(|name| CredentialRef { name });
    // The ConfigMaps get generated names only known after the RemoteCommand exists; until they
    // exist, the operator waits for them (a missing file source is waited for, never sent
    // without). Each is created whole in one request, owned by the RemoteCommand: never
    // dispatched half-complete, never orphaned.
    let names: Vec<String> = (0..files.len())
        .map(|i| format!("invoke-files-{}-{i}", short_random()))
        .collect();
    spec.files = files
        .iter()
        .zip(&names)
        .map(|(bundle, name)| FileSource {
            config_map_ref: Some(bundle.reference(name)),
            secret_ref: None,
        })
        .collect();
    let api: Api<RemoteCommand> = Api::namespaced(client.clone(), namespace);
    let mut rc = RemoteCommand::new("", spec);
    rc.metadata = ObjectMeta {
        generate_name: Some("invoke-".into()),
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
    let rc = api
        .create(&PostParams::default(), &rc)
        .await
        .map_err(|e| format!("creating the RemoteCommand in namespace {namespace}: {e}"))?;
    let name = rc.name_any();
    let owner = rc
        .controller_owner_ref(&())
        .ok_or("the created RemoteCommand has no uid")?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for (bundle, cm_name) in files.into_iter().zip(names) {
        let cm = bundle.into_config_map(&cm_name, owner.clone());
        configmaps
            .create(&PostParams::default(), &cm)
            .await
            .map_err(|e| format!("creating ConfigMap {cm_name} for {name}: {e} (the run waits for it until its timeout)"))?;
    }
    if run.no_wait {
        println!("{name}");
        return Ok(0);
    }
    eprintln!("remotecommand {namespace}/{name} created");
    follow::wait_and_print(client, namespace, &name, run.output, true).await
}

/// The exit code for a finished run: the remote one when it ran, else one of [`exit`]. A run that
/// was dispatched (`attempts` > 0) never exits [`exit::REFUSED`] ("never ran"): whatever ended it
/// afterwards, the command may have run.
pub fn exit_code(phase: Phase, reason: &str, exit_code: Option<i32>, dispatched: bool) -> u8 {
    let ran = |code: Option<i32>| match code {
        Some(c) if c.rem_euclid(256) != 0 => c.rem_euclid(256) as u8,
        _ => 1,
    };
    match (phase, reason) {
        (Phase::Succeeded, _) => 0,
        // ArmOperationFailed: AKS reports that the command started and then failed.
        // SecretRejected: it ran, but the API server would not store its output.
        (_, "NonZeroExit" | "ArmOperationFailed" | "SecretRejected") => ran(exit_code),
        (_, "CommandDidNotStart" | "AdmissionDenied") => exit::DID_NOT_START,
        (_, "DispatchInterrupted" | "SessionInterrupted" | "ResultUnavailable") => exit::UNKNOWN,
        (_, "DeadlineExceeded") => exit::DEADLINE,
        // Any other failure after a dispatch: the command ran when its exit code is known, else
        // nobody knows whether it did.
        _ if exit_code.is_some() => ran(exit_code),
        _ if dispatched => exit::UNKNOWN,
        _ => exit::REFUSED,
    }
}

/// Whether a run's status says a dispatch may have reached ARM (AKS: an attempt that was not
/// refused; ACI: a session whose command was typed).
pub fn dispatched(s: &crate::api::remote_command::RemoteCommandStatus) -> bool {
    s.attempts.unwrap_or(0) > 0 || s.command_id.is_some()
}

/// `10m`, `90s`, `1h`, `1h30m` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("'{text}' is not a duration (e.g. 90s, 10m, 1h30m)");
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let (mut total, mut number) = (0u64, String::new());
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total += n * unit;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// `--ttl`: a duration, or `0` / `none` to keep the run.
fn parse_ttl(text: &str) -> Result<Ttl, String> {
    match text {
        "none" | "0" | "0s" => Ok(Ttl(None)),
        _ => parse_duration(text).map(|d| Ttl(Some(d))),
    }
}

pub(crate) fn short_random() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "m", "10x", "5m3", "0s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl(DEFAULT_TTL), Ok(DEFAULT_TTL_VALUE));
        assert_eq!(parse_ttl("90s"), Ok(Ttl(Some(Duration::from_secs(90)))));
        for keep in ["0", "0s", "none"] {
            assert_eq!(parse_ttl(keep), Ok(Ttl(None)), "{keep}");
        }
        assert!(parse_ttl("forever").is_err());
        let parsed = |args: &[&str]| {
            let mut line = vec!["kubectl-invoke", "aks", "x", "-c", "true"];
            line.extend(args);
            match InvokeArgs::parse_from(line).command {
                InvokeCommand::Aks(a) => a.run.ttl,
                _ => unreachable!(),
            }
        };
        assert_eq!(
            parsed(&[]),
            None,
            "the default ({DEFAULT_TTL}) applies to single runs"
        );
        assert_eq!(parsed(&["--ttl", "none"]), Some(Ttl(None)));
        assert_eq!(
            parsed(&["--ttl", "5m"]),
            Some(Ttl(Some(Duration::from_secs(300))))
        );
    }

    /// `-o` is the output format wherever it is taken, as in kubectl; a file is `--output-file`.
    #[test]
    fn dash_o_is_only_ever_the_output_format() {
        let mut command = InvokeArgs::command();
        command.build();
        let mut stack = vec![&command];
        while let Some(c) = stack.pop() {
            for arg in c.get_arguments().filter(|a| a.get_short() == Some('o')) {
                let values: Vec<String> = arg
                    .get_possible_values()
                    .iter()
                    .map(|v| v.get_name().to_string())
                    .collect();
                assert_eq!(values, ["text", "json", "yaml"], "{} -o", c.get_name());
                assert_eq!(arg.get_long(), Some("output"), "{} -o", c.get_name());
            }
            stack.extend(c.get_subcommands());
        }
        let err = InvokeArgs::try_parse_from(["kubectl-invoke", "kubeconfig", "x", "-o", "f"]);
        assert!(err.is_err(), "kubeconfig -o FILE is gone");
    }

    #[test]
    fn exit_codes_tell_ran_from_not_ran() {
        assert_eq!(exit_code(Phase::Succeeded, "Completed", Some(0), true), 0);
        assert_eq!(
            exit_code(Phase::Succeeded, "ExitCodeUnavailable", None, false),
            0
        );
        assert_eq!(exit_code(Phase::Failed, "NonZeroExit", Some(3), false), 3);
        assert_eq!(
            exit_code(Phase::Failed, "NonZeroExit", Some(127), false),
            127
        );
        assert_eq!(exit_code(Phase::Failed, "NonZeroExit", Some(256), false), 1);
        assert_eq!(
            exit_code(Phase::Failed, "CommandDidNotStart", None, false),
            exit::DID_NOT_START
        );
        assert_eq!(
            exit_code(Phase::Failed, "DispatchInterrupted", None, false),
            exit::UNKNOWN
        );
        assert_eq!(
            exit_code(Phase::Failed, "DeadlineExceeded", None, false),
            exit::DEADLINE
        );
        assert_eq!(
            exit_code(Phase::Failed, "Forbidden", None, false),
            exit::REFUSED
        );
        // It started, then AKS reported it failed: it ran.
        assert_eq!(
            exit_code(Phase::Failed, "ArmOperationFailed", None, false),
            1
        );
        assert_eq!(
            exit_code(Phase::Failed, "ArmOperationFailed", Some(9), false),
            9
        );
        // After a dispatch, no failure is "never ran": a known exit code, else unknown.
        for reason in [
            "Forbidden",
            "TargetNotFound",
            "SecretConflict",
            "InvalidSpec",
        ] {
            assert_eq!(
                exit_code(Phase::Failed, reason, None, true),
                exit::UNKNOWN,
                "{reason}"
            );
            assert_eq!(
                exit_code(Phase::Failed, reason, Some(4), true),
                4,
                "{reason}"
            );
            assert_eq!(
                exit_code(Phase::Failed, reason, Some(0), true),
                1,
                "{reason}"
            );
        }
        assert_eq!(exit_code(Phase::Failed, "SecretRejected", Some(0), true), 1);
        assert_eq!(
            exit_code(Phase::Failed, "AdmissionDenied", None, true),
            exit::DID_NOT_START
        );
    }

    /// docs/cli.md's exit-status table names every status of [`exit`] and what maps to it.
    #[test]
    fn the_exit_status_table_matches_the_code() {
        let doc = include_str!("../../docs/cli.md");
        let table = doc
            .split("## Exit status")
            .nth(1)
            .expect("docs/cli.md has an 'Exit status' section");
        let rows: Vec<&str> = table
            .lines()
            .skip_while(|l| !l.starts_with("| 0"))
            .take_while(|l| l.starts_with('|'))
            .collect();
        let row = |status: u8| {
            rows.iter()
                .find(|r| r.starts_with(&format!("| {status} |")))
                .unwrap_or_else(|| panic!("docs/cli.md has no row for exit status {status}"))
                .to_string()
        };
        for (status, reasons) in [
            (exit::REFUSED, vec![]),
            (
                exit::DID_NOT_START,
                vec!["CommandDidNotStart", "AdmissionDenied"],
            ),
            (
                exit::UNKNOWN,
                vec![
                    "DispatchInterrupted",
                    "SessionInterrupted",
                    "ResultUnavailable",
                ],
            ),
            (exit::DEADLINE, vec!["DeadlineExceeded"]),
            (exit::CLI_ERROR, vec![]),
            (exit::NO_OPERATOR, vec![]),
            (exit::TARGETS_FAILED, vec![]),
            (exit::INTERRUPTED, vec![]),
        ] {
            let text = row(status);
            for reason in reasons {
                assert!(
                    text.contains(reason),
                    "exit status {status} row lacks {reason}: {text}"
                );
                assert_eq!(
                    exit_code(Phase::Failed, reason, None, true),
                    status,
                    "{reason}"
                );
            }
        }
        let ran = rows
            .iter()
            .find(|r| r.starts_with("| 0–255 |"))
            .expect("a 0–255 row");
        for reason in ["ArmOperationFailed", "SecretRejected"] {
            assert!(ran.contains(reason), "the 0–255 row lacks {reason}");
        }
        assert_eq!(rows.len(), 9, "one row per status: {rows:#?}");
        // The fleet statuses are explained for fleet runs too.
        let fleet = row(exit::TARGETS_FAILED);
        for word in ["fleet", "TargetsFailed", "MaxErrorsExceeded"] {
            assert!(fleet.contains(word), "the 246 row lacks {word}: {fleet}");
        }
        for status in [exit::REFUSED, exit::DEADLINE, exit::NO_OPERATOR] {
            assert!(
                row(status).contains("fleet"),
                "the {status} row says nothing of fleet runs"
            );
        }
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        InvokeArgs::command().debug_assert();
    }
}
