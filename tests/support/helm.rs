//! The Helm chart `charts/kubeinvoke` as real Helm renders and installs it (`helm template`,
//! `helm upgrade --install`), with the Helm binary `make prereqs` installs (`KUBEINVOKE_HELM` in the
//! cluster's env file).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use super::Cluster;

/// The chart and the `--set` overrides to render or install it with.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The chart's source, `charts/kubeinvoke` (its values, schema and README).
    pub dir: PathBuf,
    /// What Helm renders and installs: the chart as a release publishes it, packaged by
    /// `hack/release.sh` (`dist/kubeinvoke-<version>.tgz`).
    pub package: PathBuf,
    /// `values.yaml`, as parsed (defaults only: overrides are Helm's business).
    pub values: Value,
    overrides: BTreeMap<String, String>,
    /// Extra values files, in order (`-f`).
    values_files: Vec<PathBuf>,
}

/// What Helm calls `.Release`.
#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
}

impl Chart {
    /// `charts/kubeinvoke` with its default `values.yaml`, installed from its package in `dist/`.
    pub fn load() -> Chart {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/kubeinvoke");
        let package = super::dist::file(&format!("kubeinvoke-{}.tgz", super::dist::VERSION));
        let path = dir.join("values.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let values =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Chart {
            dir,
            package,
            values,
            overrides: BTreeMap::new(),
            values_files: Vec::new(),
        }
    }

    /// Overrides one value, like `helm --set a.b=value` (strings as given, JSON scalars as text).
    pub fn set(&mut self, path: &str, value: Value) {
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        self.overrides.insert(path.to_string(), text);
    }

    /// Adds a values file with `yaml` (like `helm -f`), for what `--set` cannot say well (lists).
    pub fn with_values(&mut self, yaml: &str) {
        let path = super::scratch_dir("helm-values").join("values.yaml");
        std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self.values_files.push(path);
    }

    pub fn set_args(&self) -> Vec<String> {
        let files = self
            .values_files
            .iter()
            .flat_map(|f| ["-f".to_string(), f.display().to_string()]);
        let sets = self
            .overrides
            .iter()
            .flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")]);
        files.chain(sets).collect()
    }

    /// `helm template`: every object the chart renders, with the template file it came from.
    pub fn template(&self, release: &Release) -> Vec<(String, Value)> {
        self.template_with(release, &[])
    }

    /// [`Chart::template`] with more flags (e.g. `--kube-version`).
    pub fn template_with(&self, release: &Release, extra: &[&str]) -> Vec<(String, Value)> {
        let mut args = vec![
            "template".to_string(),
            release.name.clone(),
            self.package.display().to_string(),
            "--namespace".to_string(),
            release.namespace.clone(),
        ];
        args.extend(self.set_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = helm(&args);
        assert!(
            out.status.success(),
            "helm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("helm prints UTF-8");
        let mut objects = Vec::new();
        for document in text.split("\n---") {
            let Some(source) = document
                .lines()
                .find_map(|l| l.strip_prefix("# Source: "))
                .map(|s| s.rsplit('/').next().unwrap_or(s).to_string())
            else {
                continue;
            };
            let value: Value = serde_saphyr::from_str(document)
                .unwrap_or_else(|e| panic!("helm rendered invalid YAML for {source}: {e}"));
            if !value.is_null() {
                objects.push((source, value));
            }
        }
        objects
    }

    /// The object `templates/<file>` renders to, `None` when it renders to nothing.
    pub fn render_object(&self, file: &str, release: &Release) -> Option<Value> {
        let mut found: Vec<Value> = self
            .template(release)
            .into_iter()
            .filter(|(source, _)| source == file)
            .map(|(_, v)| v)
            .collect();
        assert!(found.len() <= 1, "{file} renders {} objects", found.len());
        found.pop()
    }

    /// The ServiceAccount the chart's bindings name.
    pub fn service_account_name(&self, release: &Release) -> String {
        // One binding per watched namespace, or one cluster-wide: all name the same subject.
        let binding = self
            .template(release)
            .into_iter()
            .find(|(file, _)| file == "clusterrolebinding.yaml")
            .map(|(_, v)| v)
            .expect("the chart renders the operator's bindings");
        binding["subjects"][0]["name"]
            .as_str()
            .expect("a subject name")
            .to_string()
    }

    /// `helm upgrade --install` into the local cluster (with `extra` flags, e.g. `--wait`); the
    /// error is Helm's output.
    pub fn install(&self, release: &Release, extra: &[&str]) -> Result<(), String> {
        let mut args = vec![
            "upgrade".to_string(),
            "--install".to_string(),
            release.name.clone(),
            self.package.display().to_string(),
            "--namespace".to_string(),
            release.namespace.clone(),
            "--create-namespace".to_string(),
        ];
        args.extend(self.set_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = helm(&args);
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "helm {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs the pinned Helm against the local cluster.
pub fn helm(args: &[String]) -> Output {
    let cluster = Cluster::get();
    let bin = cluster.helm.clone();
    Command::new(&bin)
        .args(args)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("HELM_CACHE_HOME", cluster.dir.join("helm/cache"))
        .env("HELM_CONFIG_HOME", cluster.dir.join("helm/config"))
        .env("HELM_DATA_HOME", cluster.dir.join("helm/data"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}
