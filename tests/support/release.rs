//! The operator as users run it: the image imported into the node, installed with the Helm chart
//! (two replicas, leader election, the chart's own ServiceAccount), pointed at an emulator.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::emulator::Emulator;
use super::helm::{Chart, Release};
use super::{Cluster, wait_until};

/// Name of the leader-election Lease (the chart's default).
pub const LEASE: &str = "kubeinvoke";
/// The chart's default lease duration (`--leader-election-lease-seconds`).
pub const LEASE_SECONDS: u64 = 15;
/// The lease of [`Installed::install_for_split_brain`].
pub const SHORT_LEASE_SECONDS: u64 = 6;

pub struct Installed {
    pub chart: Chart,
    pub release: Release,
    admin: Client,
    /// `kubectl logs -f` of pods about to be deleted (their logs go with them), to a file each.
    followed: std::sync::Mutex<Vec<(std::process::Child, std::path::PathBuf)>>,
}

impl Installed {
    /// `helm upgrade --install` of the chart into a fresh namespace `<watch_ns>-op`, watching
    /// `watch_ns`, pointed at `emulator`; waits until `replicas` pods are Ready.
    pub async fn install(admin: &Client, emulator: &Emulator, watch_ns: &str) -> Installed {
        Installed::install_with(admin, emulator, watch_ns, "").await
    }

    /// [`Installed::install`] with more values (YAML) on top of the test cluster's.
    pub async fn install_with(
        admin: &Client,
        emulator: &Emulator,
        watch_ns: &str,
        values: &str,
    ) -> Installed {
        let release_ns = format!("{watch_ns}-op");
        Installed::install_as(admin, emulator, &release_ns, watch_ns, "", values).await
    }

    /// An install for split-brain scenarios: a 6 s lease ([`SHORT_LEASE_SECONDS`]), so that the
    /// standby takes over while a frozen leader's liveness probe (3 failures, 10 s apart) still
    /// spares it. Returns the install, the leader pod (its log followed) and its host pid.
    pub async fn install_for_split_brain(
        admin: &Client,
        emulator: &Emulator,
        watch_ns: &str,
    ) -> (Installed, Pod, String) {
        let values =
            format!("extraArgs: [\"--leader-election-lease-seconds={SHORT_LEASE_SECONDS}\"]\n");
        let op = Installed::install_with(admin, emulator, watch_ns, &values).await;
        let leader = op.leader().await;
        op.follow_logs(&leader);
        let pod = op.pods_api().get(&leader).await.expect("the leader pod");
        let pid = container_pid(&pod).to_string();
        (op, pod, pid)
    }

    /// An install that watches its own release namespace `<base>-op`, which the chart refuses: the
    /// chart watches every namespace (cluster-wide RBAC) and the environment narrows the operator
    /// to the release namespace, as a hand-made or older install could. For the operator's own
    /// defences, which must hold without the chart's.
    pub async fn install_watching_itself(
        admin: &Client,
        emulator: &Emulator,
        base: &str,
    ) -> Installed {
        let release_ns = format!("{base}-op");
        let env = format!("  - {{name: KUBEINVOKE_WATCH_NAMESPACE, value: \"{release_ns}\"}}\n");
        Installed::install_as(admin, emulator, &release_ns, "", &env, "").await
    }

    async fn install_as(
        admin: &Client,
        emulator: &Emulator,
        release_ns: &str,
        watch_ns: &str,
        extra_env: &str,
        values: &str,
    ) -> Installed {
        let release_ns = release_ns.to_string();
        let namespaces = Api::<Namespace>::all(admin.clone());
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": release_ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create the release namespace");
        let ca = std::fs::read_to_string(&emulator.ca_file).expect("emulator CA");
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": "emulator-ca"}, "data": {"ca.crt": ca}}),
        )
        .unwrap();
        Api::<ConfigMap>::namespaced(admin.clone(), &release_ns)
            .create(&PostParams::default(), &cm)
            .await
            .expect("create the emulator CA ConfigMap");
        let cluster = Cluster::get();
        let port = cluster.server.rsplit(':').next().expect("API server port");
        let mut chart = Chart::load();
        // What this cluster needs beyond the chart's defaults: the release's image as imported into
        // the node (never pulled), CRDs left to the test harness (every test release shares them),
        // the host network (no kube-proxy: the API server and the emulator are on 127.0.0.1) and
        // the custom cloud.
        chart.with_values(&format!(
            r#"image: {{pullPolicy: Never}}
crds: {{install: false}}
hostNetwork: true
extraEnv:
  - {{name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1"}}
  - {{name: KUBERNETES_SERVICE_PORT, value: "{port}"}}
{extra_env}armEndpoint: "{arm}"
authorityHost: "{arm}"
aciExecHosts: ["{exec_host}"]
caFile: {{configMap: emulator-ca, key: ca.crt}}
watchNamespace: "{watch_ns}"
logLevel: "info,kubeinvoke=debug"
"#,
            arm = emulator.arm,
            exec_host = emulator.exec_host
        ));
        if !values.is_empty() {
            chart.with_values(values);
        }
        let release = Release {
            name: release_ns.clone(),
            namespace: release_ns,
        };
        let installed = Installed {
            chart,
            release,
            admin: admin.clone(),
            followed: Default::default(),
        };
        installed.upgrade();
        installed.wait_ready_pods(2).await;
        installed
    }

    /// `helm upgrade --install --wait` with the chart's current values; panics with Helm's error,
    /// the pods and their logs.
    pub fn upgrade(&self) {
        if let Err(e) = self
            .chart
            .install(&self.release, &["--wait", "--timeout", "2m"])
        {
            let pods = Cluster::get()
                .kubectl(&["get", "pods", "-o", "wide", "-n", &self.release.namespace])
                .stdout;
            panic!("{e}\n{}\n{}", String::from_utf8_lossy(&pods), self.logs());
        }
    }

    pub fn pods_api(&self) -> Api<Pod> {
        Api::namespaced(self.admin.clone(), &self.release.namespace)
    }

    /// The release's pods that are not being deleted.
    pub async fn live_pods(&self) -> Vec<Pod> {
        let selector = format!("app.kubernetes.io/instance={}", self.release.name);
        self.pods_api()
            .list(&ListParams::default().labels(&selector))
            .await
            .expect("list pods")
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// Waits until exactly `n` live pods exist and all are Running and Ready.
    pub async fn wait_ready_pods(&self, n: usize) -> Vec<Pod> {
        wait_until(
            Duration::from_secs(120),
            &format!("{n} Ready pods of release {}", self.release.name),
            || async move {
                let pods = self.live_pods().await;
                let ready = pods.iter().filter(|p| is_ready(p)).count();
                (pods.len() == n && ready == n).then_some(pods)
            },
        )
        .await
    }

    /// The Lease holder (the leader's pod name), once there is one.
    pub async fn leader(&self) -> String {
        wait_until(Duration::from_secs(60), "a leader Lease holder", || {
            self.holder()
        })
        .await
    }

    /// The current Lease holder, if any, without waiting.
    pub async fn holder(&self) -> Option<String> {
        Api::<Lease>::namespaced(self.admin.clone(), &self.release.namespace)
            .get_opt(LEASE)
            .await
            .ok()??
            .spec?
            .holder_identity
            .filter(|h| !h.is_empty())
    }

    /// Every container log of the release's pods, the previous containers' included, and the logs
    /// of the followed pods (which may be gone).
    pub fn logs(&self) -> String {
        let cluster = Cluster::get();
        let selector = format!("app.kubernetes.io/instance={}", self.release.name);
        let out = cluster.kubectl(&[
            "logs",
            "-n",
            &self.release.namespace,
            "-l",
            &selector,
            "--tail=-1",
            "--prefix",
        ]);
        let mut logs = String::from_utf8_lossy(&out.stdout).into_owned();
        for (_, file) in self.followed.lock().unwrap().iter() {
            logs.push_str(&std::fs::read_to_string(file).unwrap_or_default());
        }
        logs
    }

    /// Keeps the log of `pod` from now on (with what it logged so far), so that it can still be
    /// shown after the pod was deleted.
    pub fn follow_logs(&self, pod: &str) {
        let file = super::scratch_dir("pod-log").join(format!("{pod}.log"));
        let out = std::fs::File::create(&file).expect("a file for a pod's log");
        let child = Cluster::get().kubectl_spawn(
            &[
                "logs",
                "-f",
                "-n",
                &self.release.namespace,
                pod,
                "--tail=-1",
                "--prefix",
            ],
            out,
        );
        self.followed.lock().unwrap().push((child, file));
    }

    /// The names of the live pods.
    pub async fn pod_names(&self) -> Vec<String> {
        self.live_pods()
            .await
            .iter()
            .map(|p| p.name_any())
            .collect()
    }
}

pub fn is_ready(pod: &Pod) -> bool {
    let status = pod.status.clone().unwrap_or_default();
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

impl Drop for Installed {
    /// The release goes with its test: left running, every release's pods would keep their CPU
    /// requests on the one node, and later tests' pods (the AKS command pods request 200m) could
    /// not be scheduled.
    fn drop(&mut self) {
        for (child, _) in self.followed.lock().unwrap().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let (name, namespace) = (&self.release.name, &self.release.namespace);
        let _ = super::helm::helm(&[
            "uninstall".into(),
            name.clone(),
            "--namespace".into(),
            namespace.clone(),
        ]);
        let _ = Cluster::get().kubectl(&["delete", "namespace", namespace, "--wait=false"]);
    }
}

/// How often the pod's (first) container restarted.
pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

/// The host pid of the pod's container, from the node's containerd.
pub fn container_pid(pod: &Pod) -> u32 {
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.container_id.clone())
        .expect("a container id");
    let id = id.trim_start_matches("containerd://");
    let cluster = Cluster::get();
    let out = std::process::Command::new("ctr")
        .arg("--address")
        .arg(&cluster.containerd_socket)
        .args(["-n", "k8s.io", "tasks", "ls"])
        .output()
        .expect("ctr tasks ls");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&id))
        .and_then(|f| f.get(1)?.parse().ok())
        .unwrap_or_else(|| panic!("containerd has no task {id}:\n{text}"))
}

/// Sends SIGSTOP / SIGCONT to a process of the node (a container's main process).
pub fn signal(pid: &str, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{sig}"), pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{sig} {pid}");
}
