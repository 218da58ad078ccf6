//! What a release publishes (`dist/`, written by `hack/release.sh`; `make e2e` runs it on the debug
//! build) is whole and consistent: checksums that match, one version everywhere, the image the
//! chart names, the repository's chart — and a `helm upgrade` of the packaged chart updates the
//! CRDs while `helm uninstall` keeps them.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::dist::{self, VERSION};
use support::emulator::{Emulator, world};
use support::release::Installed;
use support::{Cluster, rcmd, scratch_dir, wait_until};

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `tar -xzf archive -C <new dir>`; the directory.
fn unpack(archive: &Path) -> std::path::PathBuf {
    let dir = scratch_dir("unpack");
    let status = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&dir)
        .status()
        .expect("run tar");
    assert!(
        status.success(),
        "tar could not unpack {}",
        archive.display()
    );
    dir
}

/// Every file below `dir`, relative to it.
fn files_below(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn every_published_file_matches_its_checksum_and_carries_one_version() {
    let sums = std::fs::read_to_string(dist::file("SHA256SUMS")).expect("SHA256SUMS");
    let mut listed = BTreeSet::new();
    for line in sums.lines() {
        let (sum, name) = line.split_once("  ").expect("'<sha256>  <file>' lines");
        assert_eq!(
            sha256(&dist::file(name)),
            sum,
            "{name} does not match SHA256SUMS"
        );
        listed.insert(name.to_string());
    }
    let dir = support::repo_root().join("dist");
    let mut present = files_below(&dir);
    present.remove("SHA256SUMS");
    assert_eq!(listed, present, "SHA256SUMS must list every file of dist/");

    // The krew manifest names the plugin archive as it is.
    let plugin = dist::plugin_archive();
    let krew = yaml(&dist::file("invoke.yaml"));
    assert_eq!(krew["spec"]["version"], format!("v{VERSION}"));
    let platform = &krew["spec"]["platforms"][0];
    assert_eq!(platform["sha256"], sha256(&dist::file(&plugin)));
    assert!(platform["uri"].as_str().unwrap().ends_with(&plugin));
    let unpacked = files_below(dist::plugin_dir());
    for file in platform["files"].as_array().unwrap() {
        let from = file["from"].as_str().unwrap();
        assert!(unpacked.contains(from), "{plugin} lacks {from}");
    }
    let version = Command::new(dist::plugin())
        .arg("--version")
        .output()
        .expect("run the released kubectl-invoke");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("kubectl-invoke {VERSION}")
    );

    // The chart repository index names the package with its digest.
    let chart_package = format!("kubeinvoke-{VERSION}.tgz");
    let index = yaml(&dist::file("index.yaml"));
    let entry = &index["entries"]["kubeinvoke"][0];
    assert_eq!(entry["version"], VERSION);
    assert_eq!(entry["appVersion"], VERSION);
    assert_eq!(entry["digest"], sha256(&dist::file(&chart_package)));

    // The image archive holds the image the chart installs by default: <repository>:<appVersion>.
    let chart = support::helm::Chart::load();
    let default_image = format!(
        "{}:{VERSION}",
        chart.values["image"]["repository"].as_str().unwrap()
    );
    let image_dir = unpack(&dist::file(&format!("kubeinvoke-image-{VERSION}.oci.tar")));
    let oci_index: Value =
        serde_json::from_slice(&std::fs::read(image_dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        oci_index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        default_image
    );

    // The SBOM describes this package at this version.
    let sbom: Value = serde_json::from_slice(
        &std::fs::read(dist::file(&format!("kubeinvoke-{VERSION}.cdx.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["metadata"]["component"]["name"], "kubeinvoke");
    assert_eq!(sbom["metadata"]["component"]["version"], VERSION);
    let crates = sbom["components"].as_array().unwrap();
    assert!(
        crates.iter().any(|c| c["name"] == "kube-runtime"),
        "the SBOM lists the crates ({} of them) and kube-runtime among them",
        crates.len()
    );
}

#[test]
fn the_packaged_chart_is_the_chart_in_the_repository() {
    let chart = support::helm::Chart::load();
    let unpacked = unpack(&chart.package).join("kubeinvoke");
    let packaged = files_below(&unpacked);
    let source = files_below(&chart.dir);
    assert_eq!(packaged, source, "the package's files are the chart's");
    for file in &source {
        // `helm package` writes Chart.yaml anew (same fields, its own layout).
        let same = if file == "Chart.yaml" {
            yaml(&chart.dir.join(file)) == yaml(&unpacked.join(file))
        } else {
            std::fs::read(chart.dir.join(file)).unwrap()
                == std::fs::read(unpacked.join(file)).unwrap()
        };
        assert!(
            same,
            "dist/ is stale: {file} differs from charts/kubeinvoke (run hack/release.sh)"
        );
    }
}

/// The CRDs' `metadata.annotations`, for a marker the upgrade below adds.
async fn crd_annotation(
    api: &Api<CustomResourceDefinition>,
    name: &str,
    key: &str,
) -> Option<String> {
    let crd = api.get(name).await.ok()?;
    crd.metadata.annotations?.get(key).cloned()
}

/// The migration CHANGELOG.md prescribes for a cluster whose CRDs a 0.1.0 install created from
/// `crds/`: hand them to the release, then `helm upgrade` keeps them current and `helm uninstall`
/// leaves them (with every object of their kinds).
#[tokio::test]
async fn a_helm_upgrade_updates_the_crds_and_an_uninstall_keeps_them() {
    let (admin, ns) = rcmd::setup("crds-upgrade").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let release_ns = format!("{ns}-op");
    // Every CRD the harness applied: 0.1.0's two, and those added since.
    let names: Vec<String> = kubeinvoke::api::crds::all()
        .into_iter()
        .filter_map(|crd| crd.metadata.name)
        .collect();
    let crds: Vec<&str> = names.iter().map(String::as_str).collect();
    for &crd in &crds {
        Cluster::get().kubectl_ok(&[
            "label",
            "crd",
            crd,
            "app.kubernetes.io/managed-by=Helm",
            "--overwrite",
        ]);
        Cluster::get().kubectl_ok(&[
            "annotate",
            "crd",
            crd,
            &format!("meta.helm.sh/release-name={release_ns}"),
            &format!("meta.helm.sh/release-namespace={release_ns}"),
            "--overwrite",
        ]);
    }
    let op = Installed::install_with(&admin, &emulator, &ns, "crds: {install: true}\n").await;

    // A later chart whose CRDs say something new: the package, unpacked and changed.
    let marker = "kubeinvoke.io/test-chart-revision";
    let later = unpack(&op.chart.package).join("kubeinvoke");
    let crds_file = later.join("files/crds.yaml");
    let text = std::fs::read_to_string(&crds_file).unwrap();
    assert!(
        text.contains("helm.sh/resource-policy: keep"),
        "the CRDs are kept"
    );
    std::fs::write(
        &crds_file,
        text.replace(
            "helm.sh/resource-policy: keep",
            &format!("helm.sh/resource-policy: keep\n    {marker}: \"2\""),
        ),
    )
    .unwrap();
    let mut upgraded = op.chart.clone();
    upgraded.package = later;
    upgraded
        .install(&op.release, &["--wait", "--timeout", "2m"])
        .unwrap_or_else(|e| panic!("helm upgrade to the later chart: {e}"));
    let api = Api::<CustomResourceDefinition>::all(admin.clone());
    for &crd in &crds {
        assert_eq!(
            crd_annotation(&api, crd, marker).await.as_deref(),
            Some("2"),
            "helm upgrade did not update {crd}"
        );
    }

    let uninstall = support::helm::helm(&[
        "uninstall".into(),
        op.release.name.clone(),
        "--namespace".into(),
        op.release.namespace.clone(),
        "--wait".into(),
    ]);
    assert!(
        uninstall.status.success(),
        "{}",
        String::from_utf8_lossy(&uninstall.stderr)
    );
    // Helm is done; the CRDs must still be there and served, not on their way out.
    wait_until(
        Duration::from_secs(30),
        "helm uninstall to leave the release",
        || async {
            let out = support::helm::helm(&[
                "status".into(),
                op.release.name.clone(),
                "--namespace".into(),
                op.release.namespace.clone(),
            ]);
            (!out.status.success()).then_some(())
        },
    )
    .await;
    for &crd in &crds {
        let kept = api
            .get(crd)
            .await
            .unwrap_or_else(|e| panic!("{crd} was deleted by helm uninstall: {e}"));
        assert!(
            kept.metadata.deletion_timestamp.is_none(),
            "{crd} is being deleted after helm uninstall"
        );
    }
    drop(op);
}
