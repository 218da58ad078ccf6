//! Flags of `kubeinvoke controller`, each with an environment-variable fallback (what the Helm
//! chart sets).

use std::path::PathBuf;

use clap::Args;

use crate::controllers::grants::OperatorGrants;
use crate::telemetry::LogArgs;

#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub kubernetes: KubernetesArgs,
    #[command(flatten)]
    pub azure: AzureArgs,
    #[command(flatten)]
    pub leader: LeaderArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// Address of the HTTP server for /metrics, /healthz and /readyz (port 0: any free port).
    #[arg(long, env = "KUBEINVOKE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: std::net::SocketAddr,
    /// Write the address the HTTP server bound to into this file, for `kubeinvoke probe`: with the
    /// host network several replicas on one node cannot share a fixed port.
    #[arg(long, env = "KUBEINVOKE_HTTP_ADDR_FILE")]
    pub http_addr_file: Option<PathBuf>,
    /// Serve /metrics on this address instead, and only /healthz and /readyz on --http-addr (e.g.
    /// `127.0.0.1:8081` to keep metrics off the pod network).
    #[arg(long, env = "KUBEINVOKE_METRICS_BIND_ADDRESS")]
    pub metrics_bind_address: Option<std::net::SocketAddr>,
}

#[derive(Args, Debug, Clone)]
pub struct LeaderArgs {
    /// Elect a leader among replicas with a coordination.k8s.io/v1 Lease; only the leader reconciles.
    #[arg(long, env = "KUBEINVOKE_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_election_namespace: String,
    /// Name of the Lease.
    #[arg(
        long,
        env = "KUBEINVOKE_LEADER_ELECTION_LEASE_NAME",
        default_value = "kubeinvoke"
    )]
    pub leader_election_lease_name: String,
    /// Lease duration in seconds: how long a dead leader blocks a standby from taking over.
    #[arg(
        long,
        env = "KUBEINVOKE_LEADER_ELECTION_LEASE_SECONDS",
        default_value_t = 15
    )]
    pub leader_election_lease_seconds: u64,
}

#[derive(Args, Debug, Clone)]
pub struct KubernetesArgs {
    /// Watch only these namespaces (comma-separated; default: all namespaces). Each is watched on
    /// its own, so the operator needs rights only there (the chart renders a Role per namespace).
    #[arg(
        long = "watch-namespace",
        env = "KUBEINVOKE_WATCH_NAMESPACE",
        value_delimiter = ','
    )]
    pub watch_namespaces: Vec<String>,
    /// Namespaces whose resources may use the operator's own Azure identity when they name no
    /// credential Secret: comma-separated, or `*` for all. Default: none (the operator's identity
    /// reaches every cluster it may: granting it to a tenant is an explicit decision).
    #[arg(
        long,
        env = "KUBEINVOKE_GLOBAL_CREDENTIAL_NAMESPACES",
        default_value = ""
    )]
    pub global_credential_namespaces: String,
    /// Grants of the operator's own identity, as a JSON list:
    /// `[{"namespace": "team-a", "scopes": ["/subscriptions/<id>/resourceGroups/<rg>"],
    /// "adminKubeconfig": false, "aadToken": false}]` (`scopes` empty = any). Namespaces in
    /// --global-credential-namespaces get any scope without admin kubeconfigs or tokens.
    #[arg(long, env = "KUBEINVOKE_OPERATOR_IDENTITY_GRANTS", default_value = "")]
    pub operator_identity_grants: String,
    /// The operator's own Azure identity: `none` (only credential Secrets act), `workload` (Azure
    /// Workload Identity's environment) or `managed` (the node's or pod's managed identity). Never
    /// guessed: grants of an identity the operator does not have are refused at start-up.
    #[arg(long, env = "KUBEINVOKE_OPERATOR_IDENTITY", default_value = "none")]
    pub operator_identity: crate::azure::credentials::OperatorIdentity,
    /// Largest encoded AKS run-command context (zipped `spec.files`, base64) in bytes; past it a run
    /// fails with `ContextTooLarge`.
    #[arg(long, env = "KUBEINVOKE_MAX_CONTEXT_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_context_bytes: usize,
    /// What reconciles may copy at once (file ConfigMaps and Secrets as fetched, command outputs,
    /// ACI session buffers), in MiB, for all namespaces together; past it they wait their turn.
    #[arg(long, env = "KUBEINVOKE_MEMORY_BUDGET_MIB", default_value_t = 48)]
    pub memory_budget_mib: usize,
    /// Reconciles of one kind running at once (per watched namespace when several are listed).
    #[arg(
        long,
        env = "KUBEINVOKE_MAX_CONCURRENT_RECONCILES",
        default_value_t = 512
    )]
    pub max_concurrent_reconciles: u16,
    /// Reconciles of one namespace running at once; more wait their turn (a namespace cannot take
    /// every place of the others).
    #[arg(
        long,
        env = "KUBEINVOKE_MAX_RECONCILES_PER_NAMESPACE",
        default_value_t = 128
    )]
    pub max_reconciles_per_namespace: usize,
    /// ACI exec sessions open at once; a run beyond them waits before it is dispatched.
    #[arg(long, env = "KUBEINVOKE_MAX_ACI_SESSIONS", default_value_t = 64)]
    pub max_aci_sessions: usize,
    /// Name reported as the source of Events.
    #[arg(long, env = "KUBEINVOKE_CONTROLLER_NAME", default_value = "kubeinvoke")]
    pub controller_name: String,
    /// Instance reported with Events (e.g. the pod name).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
}

impl KubernetesArgs {
    pub fn operator_grants(&self) -> Result<OperatorGrants, String> {
        let grants = OperatorGrants::parse(
            &self.global_credential_namespaces,
            &self.operator_identity_grants,
        )?;
        if !grants.is_empty()
            && self.operator_identity == crate::azure::credentials::OperatorIdentity::None
        {
            return Err(
                "--global-credential-namespaces / --operator-identity-grants grant the operator's own identity, \
                 but --operator-identity is none: choose workload or managed"
                    .into(),
            );
        }
        Ok(grants)
    }
}

#[derive(Args, Debug, Clone)]
pub struct AzureArgs {
    /// Azure cloud: AzurePublicCloud, AzureChinaCloud or AzureUSGovernment. Ignored when
    /// --arm-endpoint and --authority-host name a custom cloud.
    #[arg(long, env = "KUBEINVOKE_CLOUD", default_value = "AzurePublicCloud")]
    pub cloud: String,
    /// ARM endpoint of a custom cloud (e.g. the emulator), with --authority-host.
    #[arg(long, env = "KUBEINVOKE_ARM_ENDPOINT", requires = "authority_host")]
    pub arm_endpoint: Option<String>,
    /// Entra ID authority host of a custom cloud, with --arm-endpoint.
    #[arg(long, env = "KUBEINVOKE_AUTHORITY_HOST", requires = "arm_endpoint")]
    pub authority_host: Option<String>,
    /// Hosts of a custom cloud's ACI exec websockets, besides the ARM endpoint's host: exact host
    /// names, or `.suffix` for a domain (comma-separated). The named clouds know theirs.
    #[arg(
        long,
        env = "KUBEINVOKE_ACI_EXEC_HOSTS",
        value_delimiter = ',',
        requires = "arm_endpoint"
    )]
    pub aci_exec_hosts: Vec<String>,
    /// PEM file of an extra CA to trust for ARM and Entra ID (TLS verification is never turned off).
    #[arg(long, env = "KUBEINVOKE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client-side ARM write budget per (subscription, principal): bucket size. The defaults are 90%
    /// of ARM's limits, leaving room for other clients of the same principal.
    #[arg(long, env = "KUBEINVOKE_ARM_WRITE_BURST", default_value_t = 180.0)]
    pub arm_write_burst: f64,
    /// Client-side ARM write budget per (subscription, principal): refill per second.
    #[arg(long, env = "KUBEINVOKE_ARM_WRITE_RATE", default_value_t = 9.0)]
    pub arm_write_rate: f64,
    /// Client-side ARM read budget per (subscription, principal): bucket size.
    #[arg(long, env = "KUBEINVOKE_ARM_READ_BURST", default_value_t = 225.0)]
    pub arm_read_burst: f64,
    /// Client-side ARM read budget per (subscription, principal): refill per second.
    #[arg(long, env = "KUBEINVOKE_ARM_READ_RATE", default_value_t = 22.5)]
    pub arm_read_rate: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        kubernetes: KubernetesArgs,
    }

    fn grants(args: &[&str]) -> Result<OperatorGrants, String> {
        Flags::try_parse_from(std::iter::once("kubeinvoke").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?
            .kubernetes
            .operator_grants()
    }

    #[test]
    fn the_operator_identity_is_chosen_never_guessed() {
        // Nothing granted: no identity needed.
        assert!(grants(&[]).unwrap().is_empty());
        // Granted without an identity: refused at start-up, saying what to set.
        let err = grants(&["--global-credential-namespaces", "a"]).unwrap_err();
        assert!(err.contains("--operator-identity"), "{err}");
        assert!(
            grants(&[
                "--operator-identity",
                "managed",
                "--global-credential-namespaces",
                "a"
            ])
            .is_ok()
        );
        assert!(grants(&["--operator-identity", "node"]).is_err());
    }

    const CHART_README: &str = include_str!("../charts/kubeinvoke/README.md");
    const CHART_VALUES: &str = include_str!("../charts/kubeinvoke/values.yaml");
    const CHART_DEPLOYMENT: &str = include_str!("../charts/kubeinvoke/templates/deployment.yaml");

    /// Settings of `kubeinvoke controller` the chart does not set: `extraEnv` or `extraArgs` can.
    const NOT_IN_CHART: &[&str] = &[
        "KUBEINVOKE_LEADER_ELECTION_LEASE_SECONDS",
        "KUBEINVOKE_CONTROLLER_NAME",
    ];

    #[derive(Parser)]
    struct Controller {
        #[command(flatten)]
        args: ControllerArgs,
    }

    /// (environment variable, long flag, default) of every setting of `kubeinvoke controller`.
    fn settings() -> Vec<(String, String, Option<String>)> {
        use clap::CommandFactory;
        Controller::command()
            .get_arguments()
            .filter_map(|a| {
                let env = a.get_env()?.to_string_lossy().into_owned();
                let default = a
                    .get_default_values()
                    .first()
                    .map(|v| v.to_string_lossy().into_owned());
                Some((env, a.get_long().unwrap_or_default().to_string(), default))
            })
            .collect()
    }

    fn kubeinvoke_names(text: &str) -> std::collections::BTreeSet<String> {
        let re = regex::Regex::new(r"KUBEINVOKE_[A-Z0-9_]*[A-Z0-9]").unwrap();
        re.find_iter(text).map(|m| m.as_str().to_string()).collect()
    }

    /// The chart README's values table, values.yaml and deployment.yaml name only settings the
    /// controller reads; what deployment.yaml sets is in the README's table; and every setting of
    /// the controller is set by the chart or listed in [`NOT_IN_CHART`].
    #[test]
    fn the_chart_and_the_controller_name_the_same_settings() {
        let settings = settings();
        let known: std::collections::BTreeSet<String> =
            settings.iter().map(|(env, ..)| env.clone()).collect();
        for (file, text) in [
            ("charts/kubeinvoke/README.md", CHART_README),
            ("charts/kubeinvoke/values.yaml", CHART_VALUES),
            (
                "charts/kubeinvoke/templates/deployment.yaml",
                CHART_DEPLOYMENT,
            ),
        ] {
            let unknown: Vec<_> = kubeinvoke_names(text)
                .into_iter()
                .filter(|n| !known.contains(n))
                .collect();
            assert!(
                unknown.is_empty(),
                "{file} names settings the controller does not read: {unknown:?}"
            );
        }
        let in_readme = kubeinvoke_names(CHART_README);
        let undocumented: Vec<_> = kubeinvoke_names(CHART_DEPLOYMENT)
            .into_iter()
            .filter(|n| !in_readme.contains(n))
            .collect();
        assert!(
            undocumented.is_empty(),
            "the chart sets {undocumented:?}, which its README does not mention"
        );
        let unset: Vec<_> = settings
            .iter()
            .filter(|(env, long, _)| {
                !CHART_DEPLOYMENT.contains(&format!("name: {env}\n"))
                    && !CHART_DEPLOYMENT.contains(&format!("- --{long}"))
                    && !NOT_IN_CHART.contains(&env.as_str())
            })
            .map(|(env, ..)| env)
            .collect();
        assert!(
            unset.is_empty(),
            "the chart does not set {unset:?}: set it in deployment.yaml (a value, in values.yaml, \
             values.schema.json and the README) or list it in NOT_IN_CHART"
        );
    }

    /// A value the chart passes on has the controller's own default in values.yaml and in the chart
    /// README's table, so installing with the chart changes nothing the docs do not say.
    #[test]
    fn chart_defaults_are_the_controller_defaults() {
        let values: serde_json::Value = serde_saphyr::from_str(CHART_VALUES).expect("values.yaml");
        let defaults: std::collections::BTreeMap<String, String> = settings()
            .into_iter()
            .filter_map(|(env, _, default)| Some((env, default?)))
            .collect();
        let table: Vec<(&str, &str)> = CHART_README
            .lines()
            .filter(|l| l.starts_with("| `"))
            .flat_map(|row| {
                let cells: Vec<&str> = row.split(" | ").collect();
                let keys: Vec<&str> = cells[0].trim_start_matches("| ").split(" / ").collect();
                let shown: Vec<&str> = cells
                    .get(1)
                    .copied()
                    .unwrap_or_default()
                    .split(" / ")
                    .collect();
                if keys.len() == shown.len() {
                    keys.into_iter().zip(shown).collect()
                } else {
                    Vec::new()
                }
            })
            .collect();
        for (path, env) in [
            ("cloud", "KUBEINVOKE_CLOUD"),
            (
                "leaderElectionLeaseName",
                "KUBEINVOKE_LEADER_ELECTION_LEASE_NAME",
            ),
            ("limits.memoryBudgetMiB", "KUBEINVOKE_MEMORY_BUDGET_MIB"),
            (
                "limits.concurrentReconciles",
                "KUBEINVOKE_MAX_CONCURRENT_RECONCILES",
            ),
            (
                "limits.reconcilesPerNamespace",
                "KUBEINVOKE_MAX_RECONCILES_PER_NAMESPACE",
            ),
            ("limits.aciSessions", "KUBEINVOKE_MAX_ACI_SESSIONS"),
            ("operatorIdentity", "KUBEINVOKE_OPERATOR_IDENTITY"),
            (
                "globalCredentialNamespaces",
                "KUBEINVOKE_GLOBAL_CREDENTIAL_NAMESPACES",
            ),
            ("arm.readBurst", "KUBEINVOKE_ARM_READ_BURST"),
            ("arm.readRate", "KUBEINVOKE_ARM_READ_RATE"),
            ("arm.writeBurst", "KUBEINVOKE_ARM_WRITE_BURST"),
            ("arm.writeRate", "KUBEINVOKE_ARM_WRITE_RATE"),
            ("logLevel", "KUBEINVOKE_LOG_LEVEL"),
            ("logFormat", "KUBEINVOKE_LOG_FORMAT"),
        ] {
            let code = &defaults[env];
            let value = path.split('.').fold(&values, |v, key| &v[key]);
            let same = |shown: &str| match (shown.parse::<f64>(), code.parse::<f64>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => shown == code,
            };
            let in_values = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert!(
                same(&in_values),
                "values.yaml {path}: {in_values}, the controller's default ({env}): {code}"
            );
            let (_, shown) = table
                .iter()
                .find(|(key, _)| key.trim_matches('`') == path)
                .unwrap_or_else(|| panic!("the chart README's table has no row for `{path}`"));
            let shown = shown
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_matches('`')
                .trim_matches('"');
            assert!(
                same(shown),
                "chart README `{path}`: {shown}, the controller's default ({env}): {code}"
            );
        }
    }
}
