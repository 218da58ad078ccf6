//! RemoteCommand helpers for the end-to-end tests.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, PostParams};
use kubeinvoke::api::{RemoteCommand, RemoteCommandSpec};
use serde_json::Value;

use super::{Cluster, credential_secret, install_crds, namespace, wait_until};

/// A namespace with the CRDs installed and the `kubeinvoke-credentials` Secret.
pub async fn setup(prefix: &str) -> (Client, String) {
    let client = Cluster::get().client().await;
    install_crds(&client).await;
    let ns = namespace(&client, prefix).await;
    credential_secret(&client, &ns, "kubeinvoke-credentials").await;
    (client, ns)
}

/// Creates a RemoteCommand `name` with `spec` (JSON).
pub async fn create(client: &Client, ns: &str, name: &str, spec: Value) -> RemoteCommand {
    let spec: RemoteCommandSpec = serde_json::from_value(spec).expect("RemoteCommand spec");
    let rc = RemoteCommand::new(name, spec);
    Api::<RemoteCommand>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rc)
        .await
        .expect("create RemoteCommand")
}

pub async fn get(client: &Client, ns: &str, name: &str) -> RemoteCommand {
    Api::<RemoteCommand>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .expect("get RemoteCommand")
}

/// Waits until `check` holds for the RemoteCommand.
pub async fn wait_for(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&RemoteCommand) -> bool,
) -> RemoteCommand {
    wait_for_within(client, ns, name, what, Duration::from_secs(60), check).await
}

/// [`wait_for`] with its own deadline.
pub async fn wait_for_within(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    within: Duration,
    check: impl Fn(&RemoteCommand) -> bool,
) -> RemoteCommand {
    let api = Api::<RemoteCommand>::namespaced(client.clone(), ns);
    wait_until(within, &format!("{ns}/{name}: {what}"), || {
        let api = api.clone();
        let check = &check;
        async move {
            let rc = api.get_opt(name).await.ok()??;
            check(&rc).then_some(rc)
        }
    })
    .await
}

/// Waits until the run is Succeeded or Failed.
pub async fn wait_finished(client: &Client, ns: &str, name: &str) -> RemoteCommand {
    wait_for(client, ns, name, "a terminal phase", |rc| {
        rc.status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|p| p.is_terminal())
    })
    .await
}

/// `(phase, reason)` of the status, as strings.
pub fn outcome(rc: &RemoteCommand) -> (String, String) {
    let s = rc.status.clone().unwrap_or_default();
    (
        s.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
        s.reason.unwrap_or_default(),
    )
}

/// The status message.
pub fn message(rc: &RemoteCommand) -> String {
    rc.status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

/// The output Secret's `output` key.
pub async fn output(client: &Client, ns: &str, rc: &RemoteCommand) -> String {
    let name = rc
        .status
        .as_ref()
        .and_then(|s| s.output_secret_name.clone())
        .expect("status.outputSecretName");
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(&name)
        .await
        .expect("output Secret");
    let data = secret.data.unwrap_or_default();
    String::from_utf8(data.get("output").expect("output key").0.clone()).expect("UTF-8 output")
}

/// Reasons and notes of the Events about objects in `ns`.
pub fn events(ns: &str) -> String {
    Cluster::get().kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        ns,
        "-o",
        "custom-columns=REASON:.reason,NOTE:.note",
        "--no-headers",
    ])
}

/// A spec for the AKS cluster `cluster` running `command`.
pub fn aks(cluster: &str, command: &str) -> Value {
    serde_json::json!({"target": {"aks": {"resourceId": super::emulator::aks_id(cluster)}}, "command": command})
}

/// A spec for container `app` of the container group `group`, typing `command` into `/bin/sh`.
pub fn aci_shell(group: &str, command: &str) -> Value {
    serde_json::json!({
        "target": {"containerInstance": {"resourceId": super::emulator::group_id(group), "container": "app", "shell": "/bin/sh"}},
        "command": command
    })
}
