//! `kubectl invoke`: kubectl finds this executable on PATH by its name (kubectl's plugin
//! convention). The same commands are `kubeinvoke run ...`.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    kubeinvoke::cli::run(kubeinvoke::cli::InvokeArgs::parse()).await
}
