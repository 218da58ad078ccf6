//! The `kubeinvoke` command: `crds` and `version` (the controller arrives with the controllers).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use clap::{Parser, Subcommand};

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
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds,
    /// Print the version.
    Version,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => print!("{}", kubeinvoke::api::crds::to_yaml()),
        Command::Version => println!("kubeinvoke {}", env!("CARGO_PKG_VERSION")),
    }
}
