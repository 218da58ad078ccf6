//! The `kubeinvoke` command: `controller`, `crds` and `version`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::sync::Arc;

use clap::{Parser, Subcommand};
use kube::runtime::events::Reporter;
use kubeinvoke::azure::aci::{AciClient, websocket_tls_config};
use kubeinvoke::azure::aks::AksClient;
use kubeinvoke::azure::client::NoopObserver;
use kubeinvoke::azure::hybrid::HybridClient;
use kubeinvoke::azure::throttle::{BucketConfig, ThrottleConfig};
use kubeinvoke::azure::{ArmClient, ArmClientConfig, Cloud};
use kubeinvoke::config::ControllerArgs;
use kubeinvoke::controllers::context::{Azure, Context, Settings};

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
    /// Print the version.
    Version,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => print!("{}", kubeinvoke::api::crds::to_yaml()),
        Command::Version => println!("kubeinvoke {}", env!("CARGO_PKG_VERSION")),
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
        (Some(arm), Some(authority)) => Cloud::custom(arm, authority)?,
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
    let arm = ArmClient::new(&arm_config, Arc::new(NoopObserver))?;
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
    let client = kube::Client::try_default().await?;
    let reporter = Reporter {
        controller: args.kubernetes.controller_name.clone(),
        instance: args.kubernetes.instance.clone(),
    };
    let settings = Settings {
        global_credential_namespaces: args.kubernetes.global_namespaces(),
        max_context_bytes: args.kubernetes.max_context_bytes,
    };
    let ctx = Context::new(client, reporter, settings, azure).shared();
    tracing::info!(
        arm_endpoint = %cloud.arm_endpoint(),
        authority_host = %cloud.authority_host(),
        namespace = args.kubernetes.watch_namespace.as_deref().unwrap_or("*"),
        "kubeinvoke controller starting"
    );
    kubeinvoke::controllers::run(ctx, args.kubernetes.watch_namespace.clone()).await;
    tracing::info!("kubeinvoke controller stopped");
    Ok(())
}
