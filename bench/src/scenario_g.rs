//! Scenario G as `make bench` runs it: its flags, the fleet's emulator, one RemoteCommandSet run
//! per `maxConcurrency` value, then the KubeconfigExportSet over the same clusters.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use kube::Client;

use crate::fleet::ApiServerMetrics;
use crate::fleet_set::{self, FleetShape, SetResult};
use crate::procs::{Emulator, Error};

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// Scenario G: subscriptions of the fleet (0 skips G).
    #[arg(long, default_value_t = 10)]
    pub set_subscriptions: usize,
    /// Scenario G: AKS clusters per subscription the selector picks.
    #[arg(long, default_value_t = 50)]
    pub set_clusters: usize,
    /// Scenario G: one fleet run per `maxConcurrency` value.
    #[arg(long, value_delimiter = ',', default_value = "50,100%")]
    pub set_concurrency: Vec<String>,
    /// Scenario G: `refreshInterval` and `discoveryInterval` of the KubeconfigExportSet over the
    /// same fleet (`0` skips that part).
    #[arg(long, default_value = "1m")]
    pub set_export_interval: String,
}

/// What every scenario shares: the control plane, the binaries, the emulator's timing.
pub struct Bench<'a> {
    pub client: &'a Client,
    pub env: &'a HashMap<String, String>,
    pub kubeconfig: &'a Path,
    pub work_dir: &'a Path,
    pub operator: &'a Path,
    pub emulator: &'a Path,
    pub emulator_args: &'a [String],
    pub duration: f64,
    pub retry_after: f64,
    pub require_success: bool,
}

pub async fn run(set: &SetArgs, bench: &Bench<'_>) -> Result<SetResult, Error> {
    let shape = FleetShape {
        subscriptions: set.set_subscriptions,
        clusters: set.set_clusters,
        duration: bench.duration,
        retry_after: bench.retry_after,
        page_size: 100,
    };
    let emulator = Emulator::start(
        bench.emulator,
        &bench.work_dir.join("emulator-fleet-set"),
        &fleet_set::world(shape.subscriptions, shape.clusters, shape.duration),
        bench.emulator_args,
    )?;
    let metrics = ApiServerMetrics::new(bench.env)?;
    let mut runs = Vec::new();
    for concurrency in &set.set_concurrency {
        println!(
            "bench: scenario G, one RemoteCommandSet over {} clusters in {} subscriptions (selector), maxConcurrency {concurrency}",
            shape.targets(),
            shape.subscriptions
        );
        let r = fleet_set::run(
            bench.client,
            &metrics,
            &emulator,
            bench.operator,
            bench.kubeconfig,
            bench.work_dir,
            &shape,
            concurrency,
            Duration::from_secs(900),
        )
        .await?;
        let bound = crate::report_g::bound(&shape, &r);
        println!(
            "bench:   discovery {:.2} s; all finished {:.1} s ({:.2} × bound {:.1} s), {}/{} succeeded, peak {} running, {} 429s, {} duplicates, {:.2} ms CPU and {:.2} API server writes per target, peak RSS {:.1} MiB",
            r.discovery_seconds,
            r.seconds,
            r.seconds / bound,
            bound,
            r.succeeded,
            r.targets,
            r.running_peak,
            r.throttled,
            r.duplicates,
            r.cpu_per_target() * 1000.0,
            r.writes_per_target(),
            r.peak_rss_mib
        );
        if r.duplicates > 0 {
            return Err(format!("scenario G: {} duplicate dispatches", r.duplicates).into());
        }
        if bench.require_success && (r.succeeded != shape.targets() || r.targets != shape.targets())
        {
            return Err(format!(
                "scenario G (maxConcurrency {concurrency}): {} of {} targets succeeded",
                r.succeeded,
                shape.targets()
            )
            .into());
        }
        runs.push(r);
    }
    let exports = if set.set_export_interval != "0" {
        println!(
            "bench: scenario G, one KubeconfigExportSet over the same {} clusters, refresh and discovery every {}",
            shape.targets(),
            set.set_export_interval
        );
        let x = crate::export_set::run(
            bench.client,
            &metrics,
            &emulator,
            bench.operator,
            bench.kubeconfig,
            bench.work_dir,
            &shape,
            &set.set_export_interval,
            Duration::from_secs(900),
        )
        .await?;
        println!(
            "bench:   all {} exported in {:.1} s; ARM listed at {:?} s; at rest {:.0} s: {}/{} refreshed, {} Secret writes, {} writes in all",
            x.ready,
            x.exported_seconds,
            x.listings,
            x.rest_seconds,
            x.refreshed,
            x.clusters,
            x.rest_secret_writes(),
            x.rest_writes.values().sum::<u64>()
        );
        Some(x)
    } else {
        None
    };
    Ok(SetResult {
        shape,
        runs,
        exports,
    })
}
