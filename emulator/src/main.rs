//! `kubeinvoke-emulator`: a local Azure Resource Manager + Entra ID emulator over TLS, for
//! kubeinvoke's tests, demo and benchmarks. See emulator/README.md.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(
    clippy::result_large_err,
    reason = "handlers return ready-made error responses; they are built once per request"
)]

mod aci_pty;
mod aci_ws;
mod arm;
mod control;
mod entra;
mod exec_listener;
mod faults;
mod metadata;
mod msi;
mod retry_after;
mod server;
mod state;
mod tls;
mod world;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use clap::Parser;

use faults::{Budgets, FaultSpec};
use state::{AppState, Settings, Stats};

/// Local Azure Resource Manager + Entra ID emulator (TLS, loopback only) with fault injection
/// and ARM's token-bucket throttling. Prints one JSON "ready" line on stdout, logs on stderr.
#[derive(Parser, Debug)]
#[command(name = "kubeinvoke-emulator", version)]
struct Cli {
    /// Address to listen on; must be a loopback address. Port 0 picks a free port.
    #[arg(
        long,
        env = "KUBEINVOKE_EMULATOR_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    listen: SocketAddr,

    /// Directory for ca.pem, ca-key.pem, server.pem, server-key.pem (created or reused).
    /// Default: a new directory under the system temp dir.
    #[arg(long, env = "KUBEINVOKE_EMULATOR_STATE_DIR")]
    state_dir: Option<PathBuf>,

    /// Also write the CA certificate (PEM) to this path.
    #[arg(long)]
    ca_out: Option<PathBuf>,

    /// World file (YAML or JSON). Default: the built-in world (see README).
    #[arg(long, env = "KUBEINVOKE_EMULATOR_WORLD")]
    world: Option<PathBuf>,

    /// Seed for fault injection draws (deterministic runs). Default: time-based.
    #[arg(long)]
    seed: Option<u64>,

    /// Lifetime of issued access tokens in seconds (a principal may override it in the world).
    #[arg(long, default_value_t = 3600)]
    token_lifetime_seconds: u64,

    /// Default Retry-After on 202 responses and injected 429/503: seconds, or any other text,
    /// sent verbatim (e.g. "-5", "garbage", "18446744073709551615").
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    retry_after: String,

    /// Operations the fault flags below apply to (comma-separated names, or `*`).
    #[arg(long, default_value = "*", value_delimiter = ',')]
    fault_ops: Vec<String>,

    /// Added latency in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,

    /// Delay in milliseconds between handling a request and answering it (the work is done, the
    /// client does not know yet): for crash tests of a client that dies in between.
    #[arg(long)]
    response_delay_ms: Option<u64>,

    /// Rate (0.0-1.0) of injected 429 TooManyRequests.
    #[arg(long)]
    throttle_rate: Option<f64>,

    /// Rate (0.0-1.0) of injected 500 InternalServerError.
    #[arg(long)]
    error500_rate: Option<f64>,

    /// Rate (0.0-1.0) of injected 503 ServiceUnavailable.
    #[arg(long)]
    error503_rate: Option<f64>,

    /// Rate (0.0-1.0) of connections closed without a response.
    #[arg(long)]
    drop_rate: Option<f64>,

    /// ARM read bucket size per (subscription, principal) [default 250].
    #[arg(long)]
    read_burst: Option<f64>,

    /// ARM read bucket refill per second [default 25].
    #[arg(long)]
    read_rate: Option<f64>,

    /// ARM write bucket size per (subscription, principal) [default 200].
    #[arg(long)]
    write_burst: Option<f64>,

    /// ARM write bucket refill per second [default 10].
    #[arg(long)]
    write_rate: Option<f64>,

    /// The subscription-global buckets (shared by all principals) are this many times a
    /// principal's [default 15].
    #[arg(long)]
    global_multiplier: Option<f64>,

    /// Disable ARM throttling (the remaining-quota headers are still sent).
    #[arg(long)]
    no_rate_limit: bool,

    /// Seconds an ACI exec session stays valid before its websocket connects.
    #[arg(long, default_value_t = 60)]
    exec_session_ttl_seconds: u64,

    /// Cap of run command logs in bytes (the beginning of the output is kept).
    #[arg(long, default_value_t = 512 * 1024)]
    log_cap_bytes: usize,

    /// HybridContainerService api-versions accepted (comma-separated).
    #[arg(
        long,
        default_value = "2024-01-01,2026-04-01-preview,2026-06-01-preview",
        value_delimiter = ','
    )]
    hybrid_api_versions: Vec<String>,

    /// ACI exec: an input message longer than this many bytes loses the bytes beyond it, as the
    /// service cuts messages of more than 50 characters (azure-sdk-for-js #6487).
    #[arg(long, default_value_t = 50)]
    aci_input_message_limit: usize,

    /// ACI exec: a session is cut (process killed, socket closed with 1000) after this many
    /// seconds, as ACI does after about 10-15 minutes (MicrosoftDocs/azure-docs #48526). 0: no cap.
    #[arg(long, default_value_t = 600)]
    aci_session_cap_seconds: u64,

    /// ACI exec: the TCP connection of a session from which nothing (not even a ping) came for
    /// this many seconds is dropped without a close frame, as Azure's load balancers drop flows
    /// idle for 4 minutes by default. 0: never.
    #[arg(long, default_value_t = 0)]
    aci_idle_drop_seconds: u64,

    /// api-versions served for Microsoft.ContainerService/managedClusters (comma-separated);
    /// others get NoRegisteredProviderFound. Default: any well-formed api-version.
    #[arg(long, value_delimiter = ',')]
    aks_api_versions: Vec<String>,

    /// api-versions served for Microsoft.ContainerInstance/containerGroups (comma-separated);
    /// others get NoRegisteredProviderFound. Default: any well-formed api-version.
    #[arg(long, value_delimiter = ',')]
    aci_api_versions: Vec<String>,

    #[command(flatten)]
    exec: exec_listener::ExecArgs,
}

fn fail(msg: &str) -> ! {
    eprintln!("kubeinvoke-emulator: {msg}");
    std::process::exit(2);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if !cli.listen.ip().is_loopback() {
        fail(&format!(
            "refusing to listen on non-loopback address {} (use 127.0.0.1)",
            cli.listen
        ));
    }
    let world = match &cli.world {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .unwrap_or_else(|e| fail(&format!("read {}: {e}", p.display())));
            world::World::parse(&text)
                .unwrap_or_else(|e| fail(&format!("world {}: {e}", p.display())))
        }
        None => world::World::default_world(),
    };
    let state_dir = cli.state_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "kubeinvoke-emulator-{}-{}",
            std::process::id(),
            &state::random_hex()[..8]
        ))
    });
    exec_listener::validate(&cli.exec).unwrap_or_else(|e| fail(&e));
    let material = tls::load_or_create(&state_dir, std::slice::from_ref(&cli.exec.exec_host))
        .unwrap_or_else(|e| fail(&e));
    let mut ca_file = material.ca_path.clone();
    if let Some(out) = &cli.ca_out {
        std::fs::write(out, &material.ca_pem)
            .unwrap_or_else(|e| fail(&format!("write {}: {e}", out.display())));
        ca_file = std::path::absolute(out).unwrap_or_else(|e| fail(&e.to_string()));
    }
    let tls_config = tls::server_config(&material, tls::ARM_ALPN).unwrap_or_else(|e| fail(&e));
    let exec_tls = tls::server_config(&material, tls::EXEC_ALPN).unwrap_or_else(|e| fail(&e));
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .unwrap_or_else(|e| fail(&format!("bind {}: {e}", cli.listen)));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let base_url = format!("https://127.0.0.1:{port}");
    let exec = exec_listener::bind(&cli.exec)
        .await
        .unwrap_or_else(|e| fail(&e));

    let mut fault_cfg = world.faults.clone().unwrap_or_default();
    let flag_spec = FaultSpec {
        latency_ms: cli.latency_ms,
        response_delay_ms: cli.response_delay_ms,
        retry_after: None,
        throttle_rate: cli.throttle_rate,
        error500_rate: cli.error500_rate,
        error503_rate: cli.error503_rate,
        drop_rate: cli.drop_rate,
        ..FaultSpec::default()
    };
    if flag_spec != FaultSpec::default() {
        for op in &cli.fault_ops {
            let entry = fault_cfg.entry(op.trim().to_string()).or_default();
            *entry = FaultSpec {
                latency_ms: flag_spec.latency_ms.or(entry.latency_ms),
                response_delay_ms: flag_spec.response_delay_ms.or(entry.response_delay_ms),
                retry_after: entry.retry_after.clone(),
                throttle_rate: flag_spec.throttle_rate.or(entry.throttle_rate),
                error500_rate: flag_spec.error500_rate.or(entry.error500_rate),
                error503_rate: flag_spec.error503_rate.or(entry.error503_rate),
                drop_rate: flag_spec.drop_rate.or(entry.drop_rate),
                ..entry.clone()
            };
        }
    }
    faults::validate_faults(&fault_cfg).unwrap_or_else(|e| fail(&e));
    let retry_after = retry_after::RetryAfter::from_flag(&cli.retry_after);
    retry_after
        .validate()
        .unwrap_or_else(|e| fail(&format!("--retry-after: {e}")));
    let mut budgets = world.budgets.clone().unwrap_or_default();
    budgets.read_burst = cli.read_burst.unwrap_or(budgets.read_burst);
    budgets.read_rate = cli.read_rate.unwrap_or(budgets.read_rate);
    budgets.write_burst = cli.write_burst.unwrap_or(budgets.write_burst);
    budgets.write_rate = cli.write_rate.unwrap_or(budgets.write_rate);
    budgets.global_multiplier = cli.global_multiplier.unwrap_or(budgets.global_multiplier);
    if cli.no_rate_limit {
        budgets.enabled = false;
    }
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });

    let app_state = Arc::new(AppState {
        settings: Settings {
            base_url: base_url.clone(),
            retry_after,
            token_lifetime: cli.token_lifetime_seconds,
            ca_pem: material.ca_pem.clone(),
            exec_session_ttl: Duration::from_secs(cli.exec_session_ttl_seconds),
            log_cap: cli.log_cap_bytes,
            hybrid_api_versions: cli.hybrid_api_versions.clone(),
            aci_input_limit: cli.aci_input_message_limit,
            aci_session_cap: (cli.aci_session_cap_seconds > 0)
                .then(|| Duration::from_secs(cli.aci_session_cap_seconds)),
            aci_idle_drop: (cli.aci_idle_drop_seconds > 0)
                .then(|| Duration::from_secs(cli.aci_idle_drop_seconds)),
            exec_base: exec.base.clone(),
            aks_api_versions: cli.aks_api_versions.clone(),
            aci_api_versions: cli.aci_api_versions.clone(),
        },
        world: RwLock::new(Arc::new(world)),
        faults: RwLock::new(fault_cfg),
        budgets: RwLock::new(Budgets { ..budgets }),
        rng: Mutex::new(faults::SplitMix::new(seed)),
        tokens: Mutex::new(HashMap::new()),
        buckets: Mutex::new(faults::Buckets::default()),
        commands: Mutex::new(HashMap::new()),
        run_attempts: Mutex::new(HashMap::new()),
        hybrid_ops: Mutex::new(HashMap::new()),
        exec_sessions: Mutex::new(HashMap::new()),
        stats: Mutex::new(Stats::default()),
        started: std::time::SystemTime::now(),
        world_since: RwLock::new(std::time::Instant::now()),
    });
    let exec_app = server::exec_router(app_state.clone());
    let counted = app_state.clone();
    let app = server::router(app_state);
    // Field order is part of the interface (documented in the README), so build the line by hand.
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let ready = format!(
        "{{\"event\":\"ready\",\"armEndpoint\":{},\"authorityHost\":{},\"identityEndpoint\":{},\"controlUrl\":{},\"caFile\":{},\"port\":{port},\"execEndpoint\":{},\"execPort\":{}}}",
        q(&base_url),
        q(&base_url),
        q(&format!("{base_url}/msi/token")),
        q(&format!("{base_url}/_emulator")),
        q(&ca_file.display().to_string()),
        q(&exec.base),
        exec.port,
    );
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{ready}");
        let _ = out.flush();
    }
    tracing::info!(%base_url, state_dir = %state_dir.display(), seed, "kubeinvoke-emulator ready");
    tokio::select! {
        _ = server::serve(exec.listener, exec_tls, exec_app, None) => {}
        _ = server::serve(listener, tls_config, app, Some(counted)) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
    }
    tracing::info!("shutting down");
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
