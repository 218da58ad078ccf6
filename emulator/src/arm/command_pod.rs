//! Runs an AKS run command as AKS does: in a pod of namespace `aks-command` on the world cluster's
//! own Kubernetes (the local node), with AKS's requests and limits, the attached files unzipped in
//! its working directory and a kubeconfig for the cluster. A pod that has not started within
//! `startTimeoutSeconds` is ARM's "did not start" failure (`KubernetesPerformanceError`).
//!
//! The pod: image `commandPod.image` (sh, kubectl, helm), the host network (the cluster's API
//! server is on loopback), a Secret with `context.zip` and `kubeconfig` mounted at `/context`,
//! `KUBECONFIG=/context/kubeconfig`, working directory `/command`. Its log is the command's output
//! (stdout and stderr); the container's exit code is the command's. Pod and Secret are deleted when
//! the result is recorded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use serde_json::json;

use super::runner::Outcome;
use crate::world::{CommandPod, KubeconfigSpec};

/// Where the pods run and what they get, resolved from the world.
#[derive(Debug, Clone)]
pub struct PodTarget {
    pub server: String,
    pub ca_pem: Vec<u8>,
    pub token: String,
    pub settings: CommandPod,
}

impl PodTarget {
    /// The world cluster's kubeconfig facts name the API server and its admin token; `None` when they
    /// are incomplete (the world is checked for this at load).
    pub fn from_world(spec: &KubeconfigSpec, settings: &CommandPod) -> Option<PodTarget> {
        let ca = spec.certificate_authority_data.as_deref()?;
        let ca_pem = base64::engine::general_purpose::STANDARD
            .decode(ca.trim())
            .ok()?;
        Some(PodTarget {
            server: spec.server.clone()?,
            token: spec
                .admin_token
                .clone()
                .or_else(|| spec.user_token.clone())?,
            ca_pem,
            settings: settings.clone(),
        })
    }

    /// A client for the pods' cluster, with the same credentials the pods get.
    async fn client(&self) -> Result<Client, String> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.pod_kubeconfig())
            .map_err(|e| format!("kubeconfig of the command pods' cluster: {e}"))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| format!("kubeconfig of the command pods' cluster: {e}"))?;
        Client::try_from(config).map_err(|e| format!("client for the command pods' cluster: {e}"))
    }

    /// The kubeconfig the command's kubectl uses inside the pod.
    fn pod_kubeconfig(&self) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: aks\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
             users:\n- name: aks\n  user:\n    token: {}\ncontexts:\n- name: aks\n  context: {{cluster: aks, user: aks}}\ncurrent-context: aks\n",
            self.server, self.token
        )
    }
}

/// Runs `command` with the zip `context` in a pod named after `id`; the outcome when it ends.
pub async fn run(
    target: &PodTarget,
    id: &str,
    command: &str,
    context: Vec<u8>,
    cap: usize,
    on_running: impl Fn(),
) -> Outcome {
    let client = match target.client().await {
        Ok(c) => c,
        Err(e) => return operation_error(e),
    };
    let ns = target.settings.namespace();
    let name = format!("command-{}", &id[..id.len().min(40)]);
    let outcome = run_in(&client, target, &name, command, context, cap, on_running).await;
    let dp = DeleteParams::background();
    let _ = Api::<Pod>::namespaced(client.clone(), &ns)
        .delete(
            &name,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..dp.clone()
            },
        )
        .await;
    let _ = Api::<Secret>::namespaced(client, &ns)
        .delete(&name, &dp)
        .await;
    outcome
}

async fn run_in(
    client: &Client,
    target: &PodTarget,
    name: &str,
    command: &str,
    context: Vec<u8>,
    cap: usize,
    on_running: impl Fn(),
) -> Outcome {
    let ns = &target.settings.namespace();
    let namespaces = Api::<Namespace>::all(client.clone());
    if namespaces.get_opt(ns).await.ok().flatten().is_none() {
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).expect("a Namespace");
        if let Err(e) = namespaces.create(&PostParams::default(), &namespace).await
            && !is_conflict(&e)
        {
            return operation_error(format!("create namespace {ns}: {e}"));
        }
    }
    let mut data = BTreeMap::new();
    data.insert("context.zip".to_string(), ByteString(context));
    data.insert(
        "kubeconfig".to_string(),
        ByteString(target.pod_kubeconfig().into_bytes()),
    );
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    if let Err(e) = Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
    {
        return operation_error(format!("create Secret {ns}/{name}: {e}"));
    }
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    if let Err(e) = pods
        .create(&PostParams::default(), &pod(target, name, command))
        .await
    {
        return operation_error(format!("create pod {ns}/{name}: {e}"));
    }

    let start_deadline = Instant::now() + Duration::from_secs(target.settings.start_timeout());
    let mut started = false;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pod = match pods.get(name).await {
            Ok(p) => p,
            Err(e) => return operation_error(format!("read pod {ns}/{name}: {e}")),
        };
        let status = pod.status.unwrap_or_default();
        let container = status
            .container_statuses
            .unwrap_or_default()
            .into_iter()
            .next();
        let state = container.and_then(|c| c.state).unwrap_or_default();
        if let Some(done) = state.terminated {
            let logs = pods
                .logs(
                    name,
                    &LogParams {
                        limit_bytes: Some(cap as i64),
                        ..Default::default()
                    },
                )
                .await
                .unwrap_or_default();
            return Outcome::Finished {
                exit_code: done.exit_code,
                // limitBytes cuts bytes; the decoded text is cut again at a character boundary.
                logs: super::runner::cap_text(logs, cap),
                finished_at: SystemTime::now(),
            };
        }
        if !started && state.running.is_some() {
            started = true;
            on_running();
        }
        if !started && Instant::now() >= start_deadline {
            return Outcome::Failed {
                reason: "KubernetesPerformanceError".into(),
                message: Some(format!(
                    "container {name} in {ns} namespace did not start within {}s",
                    target.settings.start_timeout()
                )),
                started: false,
            };
        }
    }
}

fn pod(target: &PodTarget, name: &str, command: &str) -> Pod {
    let s = &target.settings;
    // Unzip the attached files into the working directory, then run the command line with sh.
    let script = "if [ -s /context/context.zip ]; then unzip -oq /context/context.zip -d /command || exit 126; fi\n\
                  exec sh -c \"$COMMAND\"";
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "aks-command"}},
        "spec": {
            "restartPolicy": "Never",
            "hostNetwork": true,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "command",
                "image": s.image(),
                "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", script],
                "workingDir": "/command",
                "env": [
                    {"name": "COMMAND", "value": command},
                    {"name": "KUBECONFIG", "value": "/context/kubeconfig"},
                    {"name": "HOME", "value": "/command"},
                ],
                "resources": {
                    "requests": {"cpu": s.cpu_request(), "memory": s.memory_request()},
                    "limits": {"cpu": s.cpu_limit(), "memory": s.memory_limit()},
                },
                "volumeMounts": [
                    {"name": "context", "mountPath": "/context", "readOnly": true},
                    {"name": "command", "mountPath": "/command"},
                ],
            }],
            "volumes": [
                {"name": "context", "secret": {"secretName": name}},
                {"name": "command", "emptyDir": {}},
            ],
        }
    }))
    .expect("a Pod")
}

fn operation_error(message: String) -> Outcome {
    Outcome::Failed {
        reason: "KubernetesOperationError".into(),
        message: Some(message),
        started: false,
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
