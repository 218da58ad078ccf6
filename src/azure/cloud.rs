//! Azure clouds: where ARM and Entra ID live, and the token scopes to ask for.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use reqwest::Url;

/// The AKS AAD server application; the same id in every cloud.
pub const AKS_AAD_SERVER_SCOPE: &str = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cloud {
    AzurePublicCloud,
    AzureChinaCloud,
    AzureUSGovernment,
    /// Any other ARM endpoint, e.g. a local emulator. Both URLs are validated at construction.
    Custom {
        arm_endpoint: Url,
        authority_host: Url,
        /// Where this cloud's ACI exec websockets may be, besides the ARM endpoint's own host:
        /// exact host names, or `.suffix` for every host under a domain.
        exec_hosts: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidCloud(String);

impl Cloud {
    /// A custom cloud; the authority host must be HTTPS (azure_identity refuses anything else).
    pub fn custom(arm_endpoint: &str, authority_host: &str) -> Result<Self, InvalidCloud> {
        let arm = Url::parse(arm_endpoint)
            .map_err(|e| InvalidCloud(format!("ARM endpoint '{arm_endpoint}': {e}")))?;
        let auth = Url::parse(authority_host)
            .map_err(|e| InvalidCloud(format!("authority host '{authority_host}': {e}")))?;
        // Bearer tokens, commands and their files travel to ARM: never in clear text.
        if arm.scheme() != "https" || arm.host_str().is_none() {
            return Err(InvalidCloud(format!(
                "ARM endpoint '{arm_endpoint}' must be an https URL"
            )));
        }
        if auth.scheme() != "https" || auth.host_str().is_none() {
            return Err(InvalidCloud(format!(
                "authority host '{authority_host}' must be an https URL"
            )));
        }
        Ok(Cloud::Custom {
            arm_endpoint: arm,
            authority_host: auth,
            exec_hosts: Vec::new(),
        })
    }

    /// A custom cloud whose ACI exec websockets are served from `hosts` (exact names, or
    /// `.suffix`), as ARM's exec answers there name them. Named clouds know their own.
    pub fn with_exec_hosts(self, hosts: &[String]) -> Result<Self, InvalidCloud> {
        match self {
            Cloud::Custom {
                arm_endpoint,
                authority_host,
                ..
            } => {
                let mut exec_hosts = Vec::new();
                for h in hosts {
                    let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
                    let bare = h.trim_start_matches('.');
                    if bare.is_empty() || !bare.contains(|c: char| c.is_ascii_alphanumeric()) {
                        return Err(InvalidCloud(format!(
                            "ACI exec host '{h}' is not a host name"
                        )));
                    }
                    exec_hosts.push(h);
                }
                Ok(Cloud::Custom {
                    arm_endpoint,
                    authority_host,
                    exec_hosts,
                })
            }
            named if hosts.is_empty() => Ok(named),
            named => Err(InvalidCloud(format!(
                "ACI exec hosts can only be set for a custom cloud; {named} knows its own"
            ))),
        }
    }

    /// Where an ACI exec websocket may be. ARM's exec answer names the host; anything else is
    /// refused, so the session password and the typed command go nowhere else. ACI hands out two
    /// families (MicrosoftDocs/azure-docs #113826 shows `az container exec --debug`;
    /// azure-powershell's examples show the same for attach):
    /// - `<id>.<region>.atlas.cloudapp.azure.com:19390/execstream/…`, the current one;
    /// - `bridge-linux-<n>.<region>.management.azurecontainer.io/exec/…`, the older one.
    ///
    /// Never a customer's own container-group name, `<label>.<region>.azurecontainer.io`, which
    /// shares the `azurecontainer.io` suffix: only the `management` and `atlas` subdomains are ACI's.
    /// The sovereign clouds' names follow their clouds' domains (not seen in public material:
    /// unverified). A custom cloud allows its ARM endpoint's host and the hosts it was given.
    pub fn websocket_host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let families: &[&str] = match self {
            Cloud::AzurePublicCloud => {
                &[".atlas.cloudapp.azure.com", ".management.azurecontainer.io"]
            }
            Cloud::AzureChinaCloud => &[
                ".atlas.cloudapp.chinacloudapi.cn",
                ".management.azurecontainer.console.azure.cn",
            ],
            Cloud::AzureUSGovernment => &[
                ".atlas.cloudapp.usgovcloudapi.net",
                ".management.azurecontainer.console.azure.us",
            ],
            Cloud::Custom {
                arm_endpoint,
                exec_hosts,
                ..
            } => {
                let arm = arm_endpoint
                    .host_str()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&host));
                return arm
                    || exec_hosts
                        .iter()
                        .any(|allowed| match allowed.strip_prefix('.') {
                            Some(_) => {
                                host.ends_with(allowed.as_str()) && host.len() > allowed.len()
                            }
                            None => *allowed == host,
                        });
            }
        };
        // `<id>.<region>.` before the family: two labels at least, none empty.
        families.iter().any(|family| {
            host.strip_suffix(family).is_some_and(|prefix| {
                let labels: Vec<&str> = prefix.split('.').collect();
                labels.len() >= 2 && labels.iter().all(|l| !l.is_empty())
            })
        })
    }

    pub fn arm_endpoint(&self) -> Url {
        let s = match self {
            Cloud::AzurePublicCloud => "https://management.azure.com/",
            Cloud::AzureChinaCloud => "https://management.chinacloudapi.cn/",
            Cloud::AzureUSGovernment => "https://management.usgovcloudapi.net/",
            Cloud::Custom { arm_endpoint, .. } => return arm_endpoint.clone(),
        };
        Url::parse(s).expect("built-in ARM endpoints are valid URLs")
    }

    pub fn authority_host(&self) -> Url {
        let s = match self {
            Cloud::AzurePublicCloud => "https://login.microsoftonline.com/",
            Cloud::AzureChinaCloud => "https://login.chinacloudapi.cn/",
            Cloud::AzureUSGovernment => "https://login.microsoftonline.us/",
            Cloud::Custom { authority_host, .. } => return authority_host.clone(),
        };
        Url::parse(s).expect("built-in authority hosts are valid URLs")
    }

    /// `<ARM endpoint without trailing slash>/.default`.
    pub fn arm_scope(&self) -> String {
        format!(
            "{}/.default",
            self.arm_endpoint().as_str().trim_end_matches('/')
        )
    }

    pub fn aks_aad_server_scope(&self) -> &'static str {
        AKS_AAD_SERVER_SCOPE
    }

    /// The same cloud in azure_core's terms, for azure_identity credentials.
    pub fn core_configuration(&self) -> Arc<CloudConfiguration> {
        Arc::new(match self {
            Cloud::AzurePublicCloud => CloudConfiguration::AzurePublic,
            Cloud::AzureChinaCloud => CloudConfiguration::AzureChina,
            Cloud::AzureUSGovernment => CloudConfiguration::AzureGovernment,
            Cloud::Custom { authority_host, .. } => {
                let mut custom = CustomConfiguration::default();
                custom.authority_host = authority_host.as_str().trim_end_matches('/').to_string();
                CloudConfiguration::Custom(custom)
            }
        })
    }
}

impl FromStr for Cloud {
    type Err = InvalidCloud;

    /// The `--cloud` names; `AzureCloud` is the Azure CLI's name for the public cloud.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "azurepubliccloud" | "azurecloud" | "public" => Ok(Cloud::AzurePublicCloud),
            "azurechinacloud" | "china" => Ok(Cloud::AzureChinaCloud),
            "azureusgovernment" | "azureusgovernmentcloud" | "usgovernment" => {
                Ok(Cloud::AzureUSGovernment)
            }
            _ => Err(InvalidCloud(format!(
                "unknown cloud '{s}'; use AzurePublicCloud, AzureChinaCloud or AzureUSGovernment, \
                 or --arm-endpoint with --authority-host"
            ))),
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cloud::AzurePublicCloud => f.write_str("AzurePublicCloud"),
            Cloud::AzureChinaCloud => f.write_str("AzureChinaCloud"),
            Cloud::AzureUSGovernment => f.write_str("AzureUSGovernment"),
            Cloud::Custom { arm_endpoint, .. } => write!(f, "Custom({arm_endpoint})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_clouds() {
        let cases = [
            (
                "AzurePublicCloud",
                "https://management.azure.com/",
                "https://login.microsoftonline.com/",
                "https://management.azure.com/.default",
            ),
            (
                "azurecloud",
                "https://management.azure.com/",
                "https://login.microsoftonline.com/",
                "https://management.azure.com/.default",
            ),
            (
                "AzureChinaCloud",
                "https://management.chinacloudapi.cn/",
                "https://login.chinacloudapi.cn/",
                "https://management.chinacloudapi.cn/.default",
            ),
            (
                "AzureUSGovernment",
                "https://management.usgovcloudapi.net/",
                "https://login.microsoftonline.us/",
                "https://management.usgovcloudapi.net/.default",
            ),
        ];
        for (name, arm, authority, scope) in cases {
            let cloud: Cloud = name.parse().unwrap();
            assert_eq!(cloud.arm_endpoint().as_str(), arm, "{name}");
            assert_eq!(cloud.authority_host().as_str(), authority, "{name}");
            assert_eq!(cloud.arm_scope(), scope, "{name}");
            assert_eq!(
                cloud.aks_aad_server_scope(),
                "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
            );
        }
        assert!("AzureGermanCloud".parse::<Cloud>().is_err());
    }

    #[test]
    fn custom_cloud() {
        let cloud = Cloud::custom("https://127.0.0.1:8443", "https://127.0.0.1:8444/").unwrap();
        assert_eq!(cloud.arm_scope(), "https://127.0.0.1:8443/.default");
        assert!(
            Cloud::custom("https://arm", "http://login").is_err(),
            "authority must be https"
        );
        assert!(Cloud::custom("ftp://arm", "https://login").is_err());
        assert!(
            Cloud::custom("http://arm", "https://login").is_err(),
            "ARM must be https"
        );
        assert!(Cloud::custom("not a url", "https://login").is_err());
        match &*cloud.core_configuration() {
            CloudConfiguration::Custom(c) => assert_eq!(c.authority_host, "https://127.0.0.1:8444"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn websocket_hosts() {
        let public = Cloud::AzurePublicCloud;
        for good in [
            "bridge-linux-02.eastus.management.azurecontainer.io",
            "Bridge-Linux-1.WestEurope.Management.AzureContainer.io.",
            "a1b2c3d4e5.westeurope.atlas.cloudapp.azure.com",
        ] {
            assert!(public.websocket_host_allowed(good), "{good}");
        }
        for bad in [
            "azurecontainer.io",
            "evil.example",
            "azurecontainer.io.evil.example",
            "evilazurecontainer.io",
            // A customer's container group FQDN: `<dnsNameLabel>.<region>.azurecontainer.io`.
            "myapp.eastus.azurecontainer.io",
            "bridge-linux-02.eastus.azurecontainer.io",
            // A customer's VM: `<label>.<region>.cloudapp.azure.com`.
            "myvm.westeurope.cloudapp.azure.com",
            "westeurope.atlas.cloudapp.azure.com",
            ".westeurope.atlas.cloudapp.azure.com",
            "atlas.cloudapp.azure.com.evil.example",
        ] {
            assert!(!public.websocket_host_allowed(bad), "{bad}");
        }
        assert!(
            Cloud::AzureChinaCloud
                .websocket_host_allowed("b.chinaeast2.management.azurecontainer.console.azure.cn")
        );
        assert!(
            Cloud::AzureChinaCloud
                .websocket_host_allowed("x.chinaeast2.atlas.cloudapp.chinacloudapi.cn")
        );
        assert!(
            !Cloud::AzureChinaCloud.websocket_host_allowed("b.eastus.management.azurecontainer.io")
        );
        assert!(
            Cloud::AzureUSGovernment
                .websocket_host_allowed("x.usgovvirginia.atlas.cloudapp.usgovcloudapi.net")
        );
        let custom = Cloud::custom("https://127.0.0.1:8443", "https://127.0.0.1:8443").unwrap();
        assert!(custom.websocket_host_allowed("127.0.0.1"));
        assert!(!custom.websocket_host_allowed("127.0.0.2"));
        assert!(!custom.websocket_host_allowed("localhost"));
        let custom = custom
            .with_exec_hosts(&["localhost".into(), ".exec.example".into()])
            .unwrap();
        assert!(custom.websocket_host_allowed("localhost"));
        assert!(custom.websocket_host_allowed("a.b.exec.example"));
        assert!(!custom.websocket_host_allowed("exec.example"));
        assert!(!custom.websocket_host_allowed("evilexec.example"));
        assert!(
            Cloud::AzurePublicCloud
                .with_exec_hosts(&["x.example".into()])
                .is_err()
        );
        assert!(Cloud::AzurePublicCloud.with_exec_hosts(&[]).is_ok());
    }
}
