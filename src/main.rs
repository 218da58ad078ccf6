//! The `kubeinvoke` command: `controller`, `run` (the `kubectl invoke` CLI), `crds`,
//! `api-reference`, `probe` and `version`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::sync::Arc;

use clap::{Parser, Subcommand};
use kube::runtime::events::Reporter;
use kubeinvoke::azure::aci::{AciClient, websocket_tls_config};
use kubeinvoke::azure::aks::AksClient;
use kubeinvoke::azure::hybrid::HybridClient;
use kubeinvoke::azure::throttle::{BucketConfig, ThrottleConfig};
use kubeinvoke::azure::{ArmClient, ArmClientConfig, Cloud};
use kubeinvoke::config::ControllerArgs;
use kubeinvoke::controllers::context::{Azure, Context, Settings};
use kubeinvoke::leader::Leadership;
use kubeinvoke::metrics::Metrics;
use kubeinvoke::server::{self, Probes};
use tokio::sync::watch;

/// Kubernetes operator that runs commands on private AKS clusters and ACI containers and exports
/// kubeconfigs, through Azure Resource Manager only.
#[derive(Parser, Debug)]
#[command(name = "kubeinvoke", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controllers (RemoteCommand, KubeconfigExport) against the current kubeconfig or
    /// in-cluster config.
    Controller(Box<ControllerArgs>),
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds,
    /// Print the API reference generated from the CRD schemas (what `docs/api.md` holds).
    ApiReference,
    /// Print the version.
    Version,
    /// `kubectl invoke`: create a RemoteCommand, wait for it, print its output and exit with its
    /// exit code (the same as the kubectl-invoke plugin).
    Run(Box<kubeinvoke::cli::InvokeArgs>),
    /// Check the running controller's /healthz or /readyz (an exec probe: the image has no shell
    /// or curl). Exits 0 when it answers 200.
    Probe {
        #[arg(value_enum)]
        kind: server::ProbeKind,
        /// The file `--http-addr-file` names.
        #[arg(long, env = "KUBEINVOKE_HTTP_ADDR_FILE", conflicts_with = "addr")]
        addr_file: Option<std::path::PathBuf>,
        /// The address itself.
        #[arg(long)]
        addr: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 2)]
        timeout_seconds: u64,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => print!("{}", kubeinvoke::api::crds::to_yaml()),
        Command::ApiReference => print!("{}", kubeinvoke::api::reference::to_markdown()),
        Command::Version => println!("kubeinvoke {}", env!("CARGO_PKG_VERSION")),
        Command::Run(args) => return kubeinvoke::cli::run(*args).await,
        Command::Probe {
            kind,
            addr_file,
            addr,
            timeout_seconds,
        } => {
            let addr = match (addr, addr_file) {
                (Some(addr), _) => Ok(addr),
                (None, Some(file)) => {
                    std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))
                }
                (None, None) => Err("give --addr or --addr-file".to_string()),
            };
            let timeout = std::time::Duration::from_secs(timeout_seconds.max(1));
            if let Err(e) = addr.and_then(|a| server::probe(kind, &a, timeout)) {
                eprintln!("kubeinvoke probe: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        Command::Controller(args) => {
            kubeinvoke::telemetry::init(&args.log);
            if let Err(e) = controller(*args).await {
                tracing::error!(error = %e, "kubeinvoke controller stopped");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}

async fn controller(args: ControllerArgs) -> Result<(), Box<dyn std::error::Error>> {
    // One TLS provider for kube, reqwest, azure_identity and the websocket client.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cloud = match (&args.azure.arm_endpoint, &args.azure.authority_host) {
        (Some(arm), Some(authority)) => {
            Cloud::custom(arm, authority)?.with_exec_hosts(&args.azure.aci_exec_hosts)?
        }
        _ => args.azure.cloud.parse::<Cloud>()?,
    };
    let extra_ca = match &args.azure.ca_file {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| format!("--ca-file {}: {e}", path.display()))?)
        }
        None => None,
    };
    let mut arm_config = ArmClientConfig::new(cloud.clone());
    arm_config.extra_ca_pem = extra_ca.clone();
    arm_config.throttle = ThrottleConfig {
        read: BucketConfig {
            burst: args.azure.arm_read_burst,
            per_second: args.azure.arm_read_rate,
        },
        write: BucketConfig {
            burst: args.azure.arm_write_burst,
            per_second: args.azure.arm_write_rate,
        },
    };
    let metrics = Arc::new(Metrics::new());
    let arm = ArmClient::new(&arm_config, metrics.clone())?;
    let aci = AciClient::new(
        arm.clone(),
        None,
        websocket_tls_config(extra_ca.as_deref())?,
    );
    let azure = Azure::new(
        cloud.clone(),
        arm.clone(),
        AksClient::new(arm.clone(), None),
        aci,
        HybridClient::new(arm, None, Default::default()),
    );
    let client = kubeinvoke::apiserver::client(kube::Config::infer().await?)?;
    let identity = args
        .kubernetes
        .instance
        .clone()
        .unwrap_or_else(fallback_identity);
    let reporter = Reporter {
        controller: args.kubernetes.controller_name.clone(),
        instance: Some(identity.clone()),
    };
    let settings = Settings {
        operator_grants: args.kubernetes.operator_grants()?,
        max_context_bytes: args.kubernetes.max_context_bytes,
        memory_budget_bytes: args.kubernetes.memory_budget_mib * 1024 * 1024,
        max_reconciles_per_namespace: args.kubernetes.max_reconciles_per_namespace,
        max_aci_sessions: args.kubernetes.max_aci_sessions,
        max_concurrent_reconciles: args.kubernetes.max_concurrent_reconciles,
    };
    tracing::info!(
        arm_endpoint = %cloud.arm_endpoint(),
        authority_host = %cloud.authority_host(),
        namespaces = %namespaces_shown(&args.kubernetes.watch_namespaces),
        "kubeinvoke controller starting"
    );

    // One stop signal for everything: SIGTERM/SIGINT, or the leader Lease lost.
    let (stop, stopped) = watch::channel(false);
    let shutdown = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop signal received; finishing running work");
            let _ = stop.send(true);
        });
    }
    let probes = Probes::new(metrics.clone());
    let listener = server::bind(args.http_addr)
        .await
        .map_err(|e| format!("--http-addr {}: {e}", args.http_addr))?;
    if let Some(path) = &args.http_addr_file {
        server::write_addr_file(path, listener.local_addr()?)
            .map_err(|e| format!("--http-addr-file {}: {e}", path.display()))?;
    }
    let endpoints = match args.metrics_bind_address {
        Some(addr) => {
            let metrics_listener = server::bind(addr)
                .await
                .map_err(|e| format!("--metrics-bind-address {addr}: {e}"))?;
            tokio::spawn(server::serve(
                metrics_listener,
                probes.clone(),
                server::Endpoints::Metrics,
                shutdown(),
            ));
            server::Endpoints::Probes
        }
        None => server::Endpoints::All,
    };
    let http = tokio::spawn(server::serve(
        listener,
        probes.clone(),
        endpoints,
        shutdown(),
    ));

    let leadership = if args.leader.leader_elect {
        let standby = tokio::spawn(kubeinvoke::leader::report_known_leader(
            client.clone(),
            args.leader.clone(),
            probes.clone(),
        ));
        let acquired = tokio::select! {
            l = Leadership::acquire(client.clone(), &args.leader, &identity) => Some(l?),
            _ = shutdown() => None,
        };
        standby.abort();
        probes.set_ready(false);
        let Some(leadership) = acquired else {
            return finish(http).await;
        };
        let lost = leadership.lost();
        let stop = stop.clone();
        let watcher = tokio::spawn(async move {
            lost.await;
            tracing::error!("lost the leader Lease; stopping");
            let _ = stop.send(true);
        });
        Some((leadership, watcher))
    } else {
        None
    };
    metrics.set_leader(true);

    let azure = azure
        .with_operator_identity(args.kubernetes.operator_identity)
        .with_service_account_tokens(Arc::new(
            kubeinvoke::controllers::service_account_tokens::KubeServiceAccountTokens::new(
                client.clone(),
                kubeinvoke::controllers::service_account_tokens::own_service_account(
                    std::path::Path::new(
                        kubeinvoke::controllers::service_account_tokens::POD_TOKEN_FILE,
                    ),
                ),
            ),
        ));
    let tenure = leadership
        .as_ref()
        .map(|(l, _)| l.tenure())
        .unwrap_or_else(kubeinvoke::leader::Tenure::unconditional);
    let ctx = Context::new(client, reporter, settings, azure, metrics.clone())
        .with_tenure(tenure)
        .shared();
    kubeinvoke::controllers::run(
        ctx,
        args.kubernetes.watch_namespaces.clone(),
        probes,
        shutdown,
    )
    .await;
    metrics.set_leader(false);
    let _ = stop.send(true);
    if let Some((leadership, watcher)) = leadership {
        // The watcher holds a view of the lease state; the lease manager stops once all are gone.
        watcher.abort();
        let _ = watcher.await;
        if tokio::time::timeout(std::time::Duration::from_secs(5), leadership.release())
            .await
            .is_err()
        {
            tracing::warn!("releasing the lease timed out; it expires by itself");
        }
    }
    finish(http).await
}

async fn finish(
    http: tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<(), Box<dyn std::error::Error>> {
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("HTTP server: {e}").into()),
        Err(e) => return Err(format!("HTTP server task: {e}").into()),
    }
    tracing::info!("kubeinvoke controller stopped");
    Ok(())
}

/// The leader-election identity when no `POD_NAME` is given: the host name and a random suffix, so
/// two containers never share one (a pid alone is 1 in every container).
fn fallback_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kubeinvoke".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

/// SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The watched namespaces as logged: `*` for all.
fn namespaces_shown(namespaces: &[String]) -> String {
    if namespaces.is_empty() {
        "*".into()
    } else {
        namespaces.join(",")
    }
}
