//! The emulated Azure world: tenants, principals, subscriptions and the resources in them.
//!
//! Loaded from YAML (or JSON) at start-up and replaceable at run time through the control API.
//! Lookups are case-insensitive on names, like ARM.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::faults::{Budgets, FaultSpec};

mod aci;
mod aks;
mod arc;
mod edit;
mod sets;

pub use aci::{Container, ContainerGroup, ContainerGroupState, OsType};
pub use aks::{CommandPod, ManagedCluster, PowerState};
pub use arc::{ConnectedCluster, LroError};
pub use edit::ResourceKind;
pub use sets::{ResourceSet, SubscriptionSet};

pub const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000001";
pub const DEFAULT_CLIENT: &str = "11111111-1111-1111-1111-111111111111";
pub const DEFAULT_SECRET: &str = "emulator-secret";
pub const DEFAULT_SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct World {
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    #[serde(default)]
    pub principals: Vec<Principal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_identity: Option<ManagedIdentity>,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// Generated subscriptions (a count and an id pattern); expanded when the world is parsed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscription_sets: Vec<SubscriptionSet>,
    /// Fault injection per operation name (or `*`); applied when the world is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<BTreeMap<String, FaultSpec>>,
    /// ARM token-bucket sizes; applied when the world is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Budgets>,
    /// OIDC issuers whose tokens federated principals accept (e.g. a Kubernetes API server's
    /// service-account issuer), each with its JSON Web Key Set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oidc_issuers: Vec<OidcIssuer>,
    /// How list operations page their answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_paging: Option<ListPaging>,
}

/// Paging of the list operations (managedClusters, connectedClusters, containerGroups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListPaging {
    /// Resources per page. ARM leaves the page size to each resource provider and none of the
    /// three documents its size: 100 is the emulator's choice.
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// The first page of every listing is empty but has a `nextLink`, which ARM's RPC allows
    /// ("Returning zero records with NextLink is an acceptable response"): a client must not
    /// stop at an empty page.
    #[serde(default)]
    pub empty_first_page: bool,
}

fn default_page_size() -> usize {
    100
}

impl Default for ListPaging {
    fn default() -> Self {
        ListPaging {
            page_size: default_page_size(),
            empty_first_page: false,
        }
    }
}

/// An issuer and its signing keys (`GET <api server>/openid/v1/jwks` for Kubernetes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcIssuer {
    pub issuer: String,
    pub jwks: serde_json::Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tenant {
    pub id: String,
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Principal {
    pub tenant_id: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Accepts `client_assertion` (workload identity federation).
    #[serde(default)]
    pub federated: bool,
    /// Expected `sub` of the assertion; unchecked when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Expected `aud` of the assertion; unchecked when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Expected `iss` of the assertion, one of the world's `oidcIssuers`: the assertion's RS256
    /// signature is then verified against that issuer's keys, as Entra ID does for a federated
    /// identity credential. Unchecked (any signature) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// When set, only these ARM actions are authorized (suffix `*` is a wildcard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_actions: Option<Vec<String>>,
    /// When set, only these subscriptions are accessible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime_seconds: Option<u64>,
    /// For this many seconds after the world began (start or `PUT /_emulator/world`), Entra does
    /// not know the app yet, as while a new app replicates: token requests get 400
    /// `unauthorized_client` AADSTS700016, then succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_replicated_for_seconds: Option<f64>,
    /// For this many seconds after the world began, ARM denies the principal every action (403
    /// `AuthorizationFailed`), as while a new role assignment propagates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_assignment_delay_seconds: Option<f64>,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("federated", &self.federated)
            .finish_non_exhaustive()
    }
}

impl Principal {
    pub fn object_id(&self) -> String {
        self.object_id
            .clone()
            .unwrap_or_else(|| derived_object_id(&self.client_id))
    }
}

/// A stable, fake object id for principals that don't declare one.
pub fn derived_object_id(client_id: &str) -> String {
    let mut chars: Vec<char> = client_id.chars().rev().collect();
    chars.retain(|c| c.is_ascii_hexdigit());
    chars.resize(32, '0');
    let s: String = chars.into_iter().collect();
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedIdentity {
    pub client_id: String,
    pub tenant_id: String,
    /// Value the caller must send in `x-identity-header` (the `IDENTITY_HEADER` env var).
    pub header: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subscription {
    pub id: String,
    /// Tenant that owns the subscription; default: the first tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// `displayName` in `GET /subscriptions` (az's subscription `name`); default: the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub resource_groups: Vec<ResourceGroup>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceGroup {
    pub name: String,
    #[serde(default = "default_location")]
    pub location: String,
    #[serde(default)]
    pub managed_clusters: Vec<ManagedCluster>,
    #[serde(default)]
    pub container_groups: Vec<ContainerGroup>,
    #[serde(default)]
    pub connected_clusters: Vec<ConnectedCluster>,
    /// Generated managed clusters (a count and a name pattern); expanded when the world is parsed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_cluster_sets: Vec<ResourceSet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connected_cluster_sets: Vec<ResourceSet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_group_sets: Vec<ResourceSet>,
}

fn default_location() -> String {
    "westeurope".to_string()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeconfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_server: Option<String>,
    /// base64 of the PEM CA bundle; default: the emulator's own CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// base64 PEM, like `client-certificate-data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_client_certificate: Option<String>,
    /// base64 PEM, like `client-key-data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_client_key: Option<String>,
    /// Hybrid only: the user kubeconfig carries a kubelogin exec user (AAD).
    #[serde(default)]
    pub user_exec: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KubeconfigFault {
    InvalidBase64,
    InvalidYaml,
    Empty,
    /// AKS list*Credential answers `{"kubeconfigs": []}`.
    EmptyList,
    NoClusters,
    /// The cluster entry turns TLS verification off (`insecure-skip-tls-verify: true`).
    InsecureSkipTlsVerify,
    /// The cluster entry names a `proxy-url`.
    ProxyUrl,
    /// The user runs a credential plugin that is not kubelogin (`sh -c …`).
    ForeignExec,
}

impl ResourceGroup {
    /// ARM names are unique per type within a resource group, whatever their case.
    fn check_unique_names(&self) -> Result<(), String> {
        let kinds: [(&str, Vec<&str>); 3] = [
            (
                "managed cluster",
                self.managed_clusters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect(),
            ),
            (
                "connected cluster",
                self.connected_clusters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect(),
            ),
            (
                "container group",
                self.container_groups
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect(),
            ),
        ];
        for (kind, names) in kinds {
            let mut seen = std::collections::HashSet::new();
            for name in names {
                if !seen.insert(name.to_ascii_lowercase()) {
                    return Err(format!(
                        "resource group {}: two {kind}s are named '{name}'",
                        self.name
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Subscription {
    pub fn display_name(&self) -> String {
        self.display_name.clone().unwrap_or_else(|| self.id.clone())
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl World {
    pub fn parse(text: &str) -> Result<World, String> {
        let mut world: World = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        world.expand_sets()?;
        world.validate()?;
        Ok(world)
    }

    /// Replaces every resource set by the resources it generates.
    fn expand_sets(&mut self) -> Result<(), String> {
        for set in std::mem::take(&mut self.subscription_sets) {
            self.subscriptions.extend(set.expand()?);
        }
        for sub in &mut self.subscriptions {
            for rg in &mut sub.resource_groups {
                for set in std::mem::take(&mut rg.managed_cluster_sets) {
                    rg.managed_clusters.extend(set.expand("managedCluster")?);
                }
                for set in std::mem::take(&mut rg.connected_cluster_sets) {
                    rg.connected_clusters
                        .extend(set.expand("connectedCluster")?);
                }
                for set in std::mem::take(&mut rg.container_group_sets) {
                    rg.container_groups.extend(set.expand("containerGroup")?);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.list_paging.as_ref().is_some_and(|p| p.page_size == 0) {
            return Err("listPaging.pageSize must be at least 1".into());
        }
        let mut ids = std::collections::HashSet::new();
        if let Some(dup) = self
            .subscriptions
            .iter()
            .find(|s| !ids.insert(s.id.to_ascii_lowercase()))
        {
            return Err(format!("two subscriptions have the id '{}'", dup.id));
        }
        for sub in &self.subscriptions {
            for rg in &sub.resource_groups {
                rg.check_unique_names()?;
                for c in &rg.managed_clusters {
                    let k = &c.kubeconfig;
                    let complete = k.server.is_some()
                        && k.certificate_authority_data.is_some()
                        && (k.admin_token.is_some() || k.user_token.is_some());
                    if c.command_pod.is_some() && !complete {
                        return Err(format!(
                            "managed cluster {} has commandPod but its kubeconfig lacks server, \
                             certificateAuthorityData or a token (the pods' cluster)",
                            c.name
                        ));
                    }
                    if c.accept_after_seconds
                        .is_some_and(|v| !v.is_finite() || v < 0.0)
                    {
                        return Err(format!(
                            "managed cluster {}: acceptAfterSeconds must be >= 0",
                            c.name
                        ));
                    }
                    if let Some(f) = &c.run_command_failure {
                        f.validate()
                            .map_err(|e| format!("managed cluster {}: {e}", c.name))?;
                    }
                }
            }
        }
        for p in &self.principals {
            for (field, v) in [
                ("notReplicatedForSeconds", p.not_replicated_for_seconds),
                (
                    "roleAssignmentDelaySeconds",
                    p.role_assignment_delay_seconds,
                ),
            ] {
                if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                    return Err(format!("principal {}: {field} must be >= 0", p.client_id));
                }
            }
            if p.client_secret.is_none() && !p.federated {
                return Err(format!(
                    "principal {} has neither clientSecret nor federated: true",
                    p.client_id
                ));
            }
        }
        Ok(())
    }

    pub fn list_paging(&self) -> ListPaging {
        self.list_paging.clone().unwrap_or_default()
    }

    pub fn tenant_exists(&self, id: &str) -> bool {
        self.tenants.iter().any(|t| eq(&t.id, id))
    }

    pub fn principal(&self, tenant: &str, client_id: &str) -> Option<&Principal> {
        self.principals
            .iter()
            .find(|p| eq(&p.tenant_id, tenant) && eq(&p.client_id, client_id))
    }

    /// The principal entry for a client id in any tenant (for authorization of MSI callers).
    pub fn principal_any_tenant(&self, client_id: &str) -> Option<&Principal> {
        self.principals.iter().find(|p| eq(&p.client_id, client_id))
    }

    pub fn subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscriptions.iter().find(|s| eq(&s.id, id))
    }

    pub fn subscription_tenant(&self, sub: &Subscription) -> String {
        sub.tenant_id
            .clone()
            .or_else(|| self.tenants.first().map(|t| t.id.clone()))
            .unwrap_or_else(|| DEFAULT_TENANT.to_string())
    }

    pub fn resource_group(&self, sub: &str, rg: &str) -> Option<&ResourceGroup> {
        self.subscription(sub)?
            .resource_groups
            .iter()
            .find(|g| eq(&g.name, rg))
    }

    pub fn managed_cluster(&self, sub: &str, rg: &str, name: &str) -> Option<&ManagedCluster> {
        self.resource_group(sub, rg)?
            .managed_clusters
            .iter()
            .find(|c| eq(&c.name, name))
    }

    pub fn container_group(&self, sub: &str, rg: &str, name: &str) -> Option<&ContainerGroup> {
        self.resource_group(sub, rg)?
            .container_groups
            .iter()
            .find(|c| eq(&c.name, name))
    }

    pub fn connected_cluster(&self, sub: &str, rg: &str, name: &str) -> Option<&ConnectedCluster> {
        self.resource_group(sub, rg)?
            .connected_clusters
            .iter()
            .find(|c| eq(&c.name, name))
    }

    /// The built-in world used when no `--world` file is given.
    pub fn default_world() -> World {
        let cluster = |name: &str| ManagedCluster {
            name: name.to_string(),
            ..Default::default()
        };
        World {
            tenants: vec![Tenant {
                id: DEFAULT_TENANT.to_string(),
            }],
            principals: vec![Principal {
                tenant_id: DEFAULT_TENANT.to_string(),
                client_id: DEFAULT_CLIENT.to_string(),
                client_secret: Some(DEFAULT_SECRET.to_string()),
                ..Default::default()
            }],
            managed_identity: Some(ManagedIdentity {
                client_id: "22222222-2222-2222-2222-222222222222".to_string(),
                tenant_id: DEFAULT_TENANT.to_string(),
                header: "emulator-identity-header".to_string(),
                object_id: None,
            }),
            subscriptions: vec![Subscription {
                id: DEFAULT_SUBSCRIPTION.to_string(),
                tenant_id: None,
                display_name: Some("Emulator Subscription".to_string()),
                resource_groups: vec![ResourceGroup {
                    name: "rg1".to_string(),
                    location: default_location(),
                    managed_clusters: vec![
                        cluster("aks1"),
                        ManagedCluster {
                            aad_managed: true,
                            ..cluster("aks-aad")
                        },
                        ManagedCluster {
                            disable_run_command: true,
                            ..cluster("aks-norun")
                        },
                    ],
                    container_groups: vec![ContainerGroup {
                        name: "cg1".to_string(),
                        containers: vec![Container {
                            name: "app".to_string(),
                            logs: vec![
                                "starting app".to_string(),
                                "listening on :8080".to_string(),
                                "ready".to_string(),
                            ],
                            exec_start_seconds: None,
                        }],
                        ..Default::default()
                    }],
                    connected_clusters: vec![ConnectedCluster {
                        name: "arc1".to_string(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }],
            subscription_sets: Vec::new(),
            faults: None,
            budgets: None,
            oidc_issuers: Vec::new(),
            list_paging: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case() {
        let w = World::default_world();
        assert!(
            w.managed_cluster(DEFAULT_SUBSCRIPTION, "RG1", "AKS1")
                .is_some()
        );
        assert!(
            w.container_group(DEFAULT_SUBSCRIPTION, "rg1", "CG1")
                .is_some()
        );
        assert!(
            w.managed_cluster(DEFAULT_SUBSCRIPTION, "rg2", "aks1")
                .is_none()
        );
    }

    #[test]
    fn example_world_parses() {
        let text = include_str!("../world.example.yaml");
        let w = World::parse(text).expect("world.example.yaml must parse");
        assert!(!w.subscriptions.is_empty());
        let sub = &w.subscriptions[0].id;
        let fleet = w
            .managed_cluster(sub, "rg1", "fleet-250")
            .expect("sets are expanded");
        assert_eq!(fleet.tags["ring"], "1");
        let generated = "10000000-0000-0000-0000-000000000002";
        assert!(w.managed_cluster(generated, "fleet", "aks-50").is_some());
    }

    #[test]
    fn derived_object_id_is_uuid_shaped() {
        let oid = derived_object_id(DEFAULT_CLIENT);
        assert_eq!(oid.len(), 36);
    }

    /// `examples/` is written for this world (`make demo`, tests/examples.rs): every resource and
    /// resource group an example names must be in it.
    #[test]
    fn default_world_has_what_the_examples_name() {
        fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("examples/") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    files(&path, out);
                } else if path.extension().is_some_and(|e| e == "yaml") {
                    out.push(path);
                }
            }
        }
        let mut found = Vec::new();
        files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"),
            &mut found,
        );
        let w = World::default_world();
        let mut named = 0;
        for path in found {
            let text = std::fs::read_to_string(&path).expect("an example");
            for (at, _) in text.match_indices("/subscriptions/") {
                let id: String = text[at..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | ']' | ','))
                    .collect();
                let s: Vec<&str> = id.trim_end_matches('/').split('/').skip(1).collect();
                let known = match s.as_slice() {
                    ["subscriptions", sub] => w.subscription(sub).is_some(),
                    ["subscriptions", sub, "resourceGroups", rg] => {
                        w.resource_group(sub, rg).is_some()
                    }
                    [
                        "subscriptions",
                        sub,
                        "resourceGroups",
                        rg,
                        "providers",
                        provider,
                        kind,
                        name,
                    ] => match (*provider, *kind) {
                        ("Microsoft.ContainerService", "managedClusters") => {
                            w.managed_cluster(sub, rg, name).is_some()
                        }
                        ("Microsoft.ContainerInstance", "containerGroups") => {
                            w.container_group(sub, rg, name).is_some()
                        }
                        ("Microsoft.Kubernetes", "connectedClusters") => {
                            w.connected_cluster(sub, rg, name).is_some()
                        }
                        _ => false,
                    },
                    _ => false,
                };
                assert!(
                    known,
                    "{}: {id} is not in the default world",
                    path.display()
                );
                named += 1;
            }
        }
        assert!(named > 0, "the examples name no Azure resource");
    }
}
