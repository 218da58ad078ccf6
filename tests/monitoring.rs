//! End to end: what the alerts read is on `/metrics` of a real operator, from its real caches —
//! KubeconfigExports by readiness and reason, by time to expiry, and the build.

mod support;

use std::time::Duration;

use serde_json::json;
use support::emulator::world;
use support::kcx::{EXPORT_TIMEOUT, Env, Serving, aks, spec};
use support::wait_until;

/// A Ready export with a short-lived token and one whose cluster does not exist show up in the
/// export gauges the alerts read, with labels from fixed sets only.
#[tokio::test]
async fn exports_show_in_the_metrics_by_readiness_and_expiry() {
    let env = Env::start(
        "monitoring",
        &world("", ""),
        &["--token-lifetime-seconds", "600"],
    )
    .await;
    let mut token = spec(aks("aks-aad", "User"), "aad-kubeconfig", "Kubeconfig");
    token["authentication"] = json!("Token");
    env.create("aad", token).await;
    env.create(
        "gone",
        spec(
            aks("no-such-cluster", "User"),
            "gone-kubeconfig",
            "Kubeconfig",
        ),
    )
    .await;
    env.wait_exported("aad").await;
    env.wait_reason("gone", "TargetNotFound", EXPORT_TIMEOUT)
        .await;

    let Serving::Process(operator) = &env.operator else {
        panic!("Env::start runs the operator as a process");
    };
    let url = format!("{}/metrics", operator.http_url().await);
    let expected = [
        "kubeinvoke_kubeconfig_exports{ready=\"True\",reason=\"Exported\"} 1".to_string(),
        "kubeinvoke_kubeconfig_exports{ready=\"False\",reason=\"TargetNotFound\"} 1".to_string(),
        // The 10-minute token: within an hour, not expired.
        "kubeinvoke_kubeconfig_exports_expiring{within=\"1h\"} 1".to_string(),
        "kubeinvoke_kubeconfig_exports_expired 0".to_string(),
        "kubeinvoke_leader 1".to_string(),
        format!(
            "kubeinvoke_build_info{{version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        ),
    ];
    // The gauges are read from the cache at scrape time: wait until it has seen both statuses.
    let text = wait_until(
        Duration::from_secs(30),
        "the export gauges on /metrics",
        || {
            let url = url.clone();
            let expected = expected.clone();
            async move {
                let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                expected
                    .iter()
                    .all(|line| text.contains(line.as_str()))
                    .then_some(text)
            }
        },
    )
    .await;
    for line in text
        .lines()
        .filter(|l| l.starts_with("kubeinvoke_kubeconfig_exports"))
    {
        assert!(
            !line.contains(&env.ns) && !line.contains("gone") && !line.contains("aad"),
            "a tenant-chosen name in {line}"
        );
    }
}
