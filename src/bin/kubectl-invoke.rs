//! `kubectl invoke`: kubectl finds this executable on PATH by its name (kubectl's plugin
//! convention). The same commands are `kubeinvoke run ...`. Called as `kubectl_complete-invoke`
//! (a link to it) or with `__complete`, it answers kubectl's completion requests.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(words) = kubeinvoke::cli::complete::request(&args) {
        return kubeinvoke::cli::complete::answer(words).await;
    }
    match kubeinvoke::cli::InvokeArgs::try_parse_from(args) {
        Ok(args) => kubeinvoke::cli::run(args).await,
        // Help and version go to stdout with 0; a wrong argument is the CLI's own failure (240).
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                std::process::ExitCode::from(kubeinvoke::cli::exit::CLI_ERROR)
            } else {
                std::process::ExitCode::SUCCESS
            }
        }
    }
}
