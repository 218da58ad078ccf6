//! Tenants are adversaries, against a host process (the chart-level attacks are in hostile.rs):
//! what a tenant writes cannot grow the operator's metrics.

mod support;

use serde_json::json;

use support::emulator::{Emulator, world};
use support::operator::Operator;
use support::rcmd::{create, wait_finished};
use support::{Cluster, install_crds, namespace};

/// Tenants choose subscription ids freely; none of them becomes a metrics label, and the series
/// count does not grow with them.
#[tokio::test]
async fn tenant_chosen_subscriptions_do_not_grow_the_metrics() {
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "noisy").await;
    support::credential_secret(&client, &ns, "kubeinvoke-credentials").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let operator = Operator::start(&emulator, &ns, &[]);
    let mut subscriptions = Vec::new();
    for i in 0..60 {
        let sub = format!("{:08x}-0000-4000-8000-{:012x}", 0xdead0000u32 + i, i);
        let id = format!(
            "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1"
        );
        let spec =
            json!({"target": {"aks": {"resourceId": id}}, "command": "true", "timeoutSeconds": 30});
        create(&client, &ns, &format!("noise-{i}"), spec).await;
        subscriptions.push(sub);
    }
    for i in 0..60 {
        wait_finished(&client, &ns, &format!("noise-{i}")).await;
    }
    let url = format!("{}/metrics", operator.http_url().await);
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let leaked: Vec<&String> = subscriptions
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .collect();
    assert!(
        leaked.is_empty(),
        "subscription ids in /metrics: {leaked:?}"
    );
    assert!(
        !text.contains(support::emulator::CLIENT_ID),
        "a client id in /metrics"
    );
    let bucket_series = text
        .lines()
        .filter(|l| l.starts_with("kubeinvoke_arm_bucket"))
        .count();
    assert!(bucket_series <= 6, "{bucket_series} bucket series:\n{text}");
}
