//! `--file`: files and directories from the local disk, packed into ConfigMaps the RemoteCommand
//! names (and owns). Paths are kept relative to the current directory, as `az aks command invoke
//! --file` does; `.` is the whole current directory.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;

use crate::api::remote_command::{KeyToPath, KeysRef};

/// At most this many files per ConfigMap (the RemoteCommand's `items` limit).
const FILES_PER_CONFIGMAP: usize = 32;
/// At most this many bytes of content per ConfigMap (an object is at most 1 MiB in all).
const BYTES_PER_CONFIGMAP: usize = 900 * 1024;
/// At most this many ConfigMaps (the RemoteCommand's `files` limit).
const MAX_CONFIGMAPS: usize = 8;

/// One ConfigMap's worth of files: (relative path, content).
#[derive(Debug, Default)]
pub struct Bundle {
    files: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    fn size(&self) -> usize {
        self.files.iter().map(|(p, c)| p.len() + c.len()).sum()
    }

    /// The RemoteCommand's reference to this bundle, stored as ConfigMap `name`.
    pub fn reference(&self, name: &str) -> KeysRef {
        KeysRef {
            name: name.to_string(),
            items: self
                .files
                .iter()
                .enumerate()
                .map(|(i, (path, _))| KeyToPath {
                    key: key(i),
                    path: Some(path.clone()),
                })
                .collect(),
        }
    }

    /// The ConfigMap itself: text files under `data`, others under `binaryData`.
    pub fn into_config_map(self, name: &str, owner: OwnerReference) -> ConfigMap {
        let (mut data, mut binary) = (BTreeMap::new(), BTreeMap::new());
        for (i, (_, content)) in self.files.into_iter().enumerate() {
            match String::from_utf8(content) {
                Ok(text) => {
                    data.insert(key(i), text);
                }
                Err(e) => {
                    binary.insert(key(i), ByteString(e.into_bytes()));
                }
            }
        }
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                owner_references: Some(vec![owner]),
                labels: Some(
                    [(
                        "app.kubernetes.io/created-by".to_string(),
                        "kubectl-invoke".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            data: Some(data),
            binary_data: Some(binary),
            ..Default::default()
        }
    }
}

fn key(i: usize) -> String {
    format!("file-{i:03}")
}

/// Reads every `--file` argument (relative to `cwd`) into bundles that each fit a ConfigMap.
pub fn collect(args: &[PathBuf], cwd: &Path) -> Result<Vec<Bundle>, String> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for arg in args {
        let path = if arg.is_absolute() {
            arg.clone()
        } else {
            cwd.join(arg)
        };
        let meta =
            std::fs::metadata(&path).map_err(|e| format!("--file {}: {e}", arg.display()))?;
        if meta.is_dir() {
            walk(&path, cwd, &mut files)?;
        } else {
            add(&path, cwd, &mut files)?;
        }
    }
    let mut bundles: Vec<Bundle> = Vec::new();
    for (path, content) in files {
        let size = path.len() + content.len();
        if size > BYTES_PER_CONFIGMAP {
            return Err(format!(
                "--file {path}: {} bytes is more than a ConfigMap holds ({BYTES_PER_CONFIGMAP} bytes)",
                content.len()
            ));
        }
        let fits = bundles.last().is_some_and(|b| {
            b.files.len() < FILES_PER_CONFIGMAP && b.size() + size <= BYTES_PER_CONFIGMAP
        });
        if !fits {
            bundles.push(Bundle::default());
        }
        bundles
            .last_mut()
            .expect("a bundle was just pushed")
            .files
            .push((path, content));
    }
    if bundles.len() > MAX_CONFIGMAPS {
        return Err(format!(
            "the files need {} ConfigMaps; a RemoteCommand takes at most {MAX_CONFIGMAPS}",
            bundles.len()
        ));
    }
    Ok(bundles)
}

fn walk(dir: &Path, cwd: &Path, files: &mut BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let linked = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .is_symlink();
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if linked {
            // A directory sent whole never takes along what it only points to.
            stays_inside(&path, cwd, meta.is_dir())?;
        }
        if meta.is_dir() {
            walk(&path, cwd, files)?;
        } else if meta.is_file() {
            add(&path, cwd, files)?;
        }
    }
    Ok(())
}

/// A symbolic link met while sending a directory is followed only to a file inside the current
/// directory: a link out of it (to `~/.ssh`, `/etc`, a credentials file) or to a directory (a loop,
/// or a way out) is refused, loudly, so that nothing is sent that was not meant to be.
fn stays_inside(link: &Path, cwd: &Path, to_directory: bool) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "{}: a symbolic link {why}; not followed (copy what is meant to go into the directory)",
            link.display()
        ))
    };
    if to_directory {
        return refuse("to a directory");
    }
    let target = std::fs::canonicalize(link).map_err(|e| format!("{}: {e}", link.display()))?;
    let base = std::fs::canonicalize(cwd).map_err(|e| format!("{}: {e}", cwd.display()))?;
    if target.starts_with(&base) {
        Ok(())
    } else {
        refuse("out of the current directory")
    }
}

fn add(path: &Path, cwd: &Path, files: &mut BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    let relative = relative_path(path, cwd)?;
    let content = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    files.insert(relative, content);
    Ok(())
}

/// The path a file gets on the other side: relative to `cwd` when it is under it, else its name.
fn relative_path(path: &Path, cwd: &Path) -> Result<String, String> {
    let relative = path
        .strip_prefix(cwd)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(path.file_name().unwrap_or_default()));
    let parts: Vec<String> = relative
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(Ok(p.to_string_lossy().into_owned())),
            Component::CurDir => None,
            _ => Some(Err(())),
        })
        .collect::<Result<_, _>>()
        .map_err(|_| {
            format!(
                "{}: paths must stay inside the current directory",
                path.display()
            )
        })?;
    if parts.is_empty() {
        return Err(format!("{}: not a file", path.display()));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_links_out_of_the_directory_are_never_followed() {
        let dir = std::env::temp_dir().join(format!("kubeinvoke-cli-links-{}", std::process::id()));
        let outside = dir.with_extension("outside");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&outside);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("id_rsa"), "secret").unwrap();
        std::fs::write(dir.join("app.yaml"), "kind: X\n").unwrap();
        // A link to a file inside is sent as that file.
        std::os::unix::fs::symlink(dir.join("app.yaml"), dir.join("sub/same.yaml")).unwrap();
        let bundles = collect(&[PathBuf::from(".")], &dir).unwrap();
        assert_eq!(bundles[0].files.len(), 2);
        // A link out of it fails the whole collection, naming the link.
        std::os::unix::fs::symlink(outside.join("id_rsa"), dir.join("sub/key")).unwrap();
        let err = collect(&[PathBuf::from(".")], &dir).unwrap_err();
        assert!(
            err.contains("sub/key") && err.contains("out of the current directory"),
            "{err}"
        );
        std::fs::remove_file(dir.join("sub/key")).unwrap();
        // A link to a directory (inside or not) is not followed.
        std::os::unix::fs::symlink(&outside, dir.join("sub/elsewhere")).unwrap();
        let err = collect(&[PathBuf::from(".")], &dir).unwrap_err();
        assert!(err.contains("to a directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn directories_keep_their_relative_paths_and_binary_files_stay_binary() {
        let dir = std::env::temp_dir().join(format!("kubeinvoke-cli-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("deploy/nested")).unwrap();
        std::fs::write(dir.join("top.txt"), "top\n").unwrap();
        std::fs::write(dir.join("deploy/nested/app.yaml"), "kind: X\n").unwrap();
        std::fs::write(dir.join("deploy/blob.bin"), [0u8, 159, 146, 150, 255]).unwrap();
        let bundles = collect(&[PathBuf::from(".")], &dir).unwrap();
        assert_eq!(bundles.len(), 1);
        let r = bundles[0].reference("cm");
        let paths: Vec<_> = r.items.iter().map(|i| i.path.clone().unwrap()).collect();
        assert_eq!(
            paths,
            ["deploy/blob.bin", "deploy/nested/app.yaml", "top.txt"]
        );
        let owner = OwnerReference::default();
        let cm = bundles
            .into_iter()
            .next()
            .unwrap()
            .into_config_map("cm", owner);
        assert_eq!(
            cm.binary_data.unwrap()["file-000"].0,
            [0u8, 159, 146, 150, 255]
        );
        assert_eq!(cm.data.unwrap()["file-002"], "top\n");
        let only = collect(&[PathBuf::from("deploy/nested")], &dir).unwrap();
        assert_eq!(
            only[0].reference("cm").items[0].path.as_deref(),
            Some("deploy/nested/app.yaml")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn many_files_spread_over_configmaps() {
        let dir = std::env::temp_dir().join(format!("kubeinvoke-cli-many-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..70 {
            std::fs::write(dir.join(format!("f{i}")), "x").unwrap();
        }
        let bundles = collect(&[PathBuf::from(".")], &dir).unwrap();
        assert_eq!(
            bundles.iter().map(|b| b.files.len()).collect::<Vec<_>>(),
            [32, 32, 6]
        );
        for i in 70..300 {
            std::fs::write(dir.join(format!("f{i}")), "x").unwrap();
        }
        let too_many = collect(&[PathBuf::from(".")], &dir).unwrap_err();
        assert!(too_many.contains("at most 8"), "{too_many}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
