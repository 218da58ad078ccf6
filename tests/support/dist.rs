//! What a release publishes, as `hack/release.sh` wrote it to `dist/` (`make e2e` runs it on the
//! debug build first): the tests install the packaged chart and run the plugin from its archive, as
//! a user does.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The version every artifact carries (Cargo's, the chart's, the image tag).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `dist/<name>`, which must exist.
pub fn file(name: &str) -> PathBuf {
    let path = super::repo_root().join("dist").join(name);
    assert!(
        path.is_file(),
        "{} is missing: the end-to-end tests use the release's files; run `hack/release.sh --profile debug` (make e2e does)",
        path.display()
    );
    path
}

/// The plugin archive's name.
pub fn plugin_archive() -> String {
    format!("kubectl-invoke_v{VERSION}_linux_amd64.tar.gz")
}

/// The directory the plugin archive is unpacked into once per test binary, as krew unpacks it.
pub fn plugin_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = super::scratch_dir("plugin");
        let archive = file(&plugin_archive());
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
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
    })
}

/// The `kubectl-invoke` binary from the release's plugin archive.
pub fn plugin() -> PathBuf {
    plugin_dir().join("kubectl-invoke")
}
