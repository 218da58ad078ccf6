//! `kubectl invoke kubeconfig`: the kubeconfig a KubeconfigExport keeps, written to a local file
//! (or stdout) whatever the Secret's format, never over an existing file unless told.

use std::io::Write;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use super::{Error, KubeconfigArgs};
use crate::api::KubeconfigExport;
use crate::api::kubeconfig_export::SecretFormat;
use crate::kubeconfig::{DEFAULT_KUBECONFIG_KEY, VALUE_KEY};

pub async fn write(client: &Client, namespace: &str, args: &KubeconfigArgs) -> Result<u8, Error> {
    if let Some(file) = &args.file
        && file.exists()
        && !args.force
    {
        return Err(format!("{} exists; give --force to overwrite it", file.display()).into());
    }
    let kcx = Api::<KubeconfigExport>::namespaced(client.clone(), namespace)
        .get(&args.name)
        .await
        .map_err(|e| format!("KubeconfigExport {namespace}/{}: {e}", args.name))?;
    let secret_name = kcx
        .status
        .as_ref()
        .and_then(|s| s.secret_name.clone())
        .ok_or_else(|| {
            format!(
                "KubeconfigExport {namespace}/{} has not exported yet",
                args.name
            )
        })?;
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(&secret_name)
        .await
        .map_err(|e| format!("Secret {namespace}/{secret_name}: {e}"))?;
    let data = secret.data.unwrap_or_default();
    let field = |key: &str| {
        data.get(key)
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("Secret {namespace}/{secret_name} has no key {key}"))
    };
    let spec = &kcx.spec.secret;
    let kubeconfig = match spec.format {
        SecretFormat::Kubeconfig => field(spec.key.as_deref().unwrap_or(DEFAULT_KUBECONFIG_KEY))?,
        SecretFormat::Flux | SecretFormat::ClusterApi => field(VALUE_KEY)?,
        SecretFormat::ArgoCd => {
            let name = String::from_utf8_lossy(&field("name")?).into_owned();
            let server = String::from_utf8_lossy(&field("server")?).into_owned();
            crate::kubeconfig::argocd::kubeconfig_from_cluster_secret(
                &name,
                &server,
                &field("config")?,
            )?
            .into_bytes()
        }
    };
    match &args.file {
        Some(file) => {
            write_private(file, &kubeconfig, args.force)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            eprintln!(
                "wrote the kubeconfig of {namespace}/{} to {}",
                args.name,
                file.display()
            );
        }
        None => std::io::stdout().lock().write_all(&kubeconfig)?,
    }
    Ok(0)
}

/// Writes a file only its owner can read (it holds credentials).
fn write_private(path: &std::path::Path, content: &[u8], overwrite: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path)?.write_all(content)
}
