//! Who may act with the operator's own Azure identity, and where. That identity reaches every
//! cluster it has Azure RBAC on, so it is granted per namespace, explicitly: none by default.
//!
//! A grant names a namespace (or `*`), the ARM scopes it may target (resource-id prefixes:
//! a subscription, a resource group or one resource; none = anywhere the identity reaches), and
//! whether it may export admin kubeconfigs (`role: Admin`), the identity's own AAD token
//! (`authentication: Token`), or run commands (RemoteCommands). Anything else is refused before
//! any ARM request.

use serde::Deserialize;

use super::reason::{Failure, Reason};

/// One namespace's grant of the operator's identity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Grant {
    /// A namespace, or `*` for every namespace.
    pub namespace: String,
    /// ARM resource-id prefixes the namespace may target; empty = any.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// KubeconfigExport `role: Admin` (static cluster-admin credentials).
    #[serde(default)]
    pub admin_kubeconfig: bool,
    /// KubeconfigExport `authentication: Token` (the identity's AAD token in the namespace's Secret).
    #[serde(default)]
    pub aad_token: bool,
    /// RemoteCommands. A command runs with what the identity's AKS token can do (AKS hands it to
    /// the command pod, or runs it as cluster admin on a local-account cluster): scopes bound the
    /// target, not what the command may do there, so this is a grant of its own.
    #[serde(default)]
    pub run_commands: bool,
}

/// Every grant, in order; the first that names a namespace (or `*`) applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorGrants(Vec<Grant>);

impl OperatorGrants {
    /// From `--global-credential-namespaces` (comma-separated namespaces or `*`: any scope, no
    /// admin kubeconfig, no token, no commands) and `--operator-identity-grants` (a JSON list of [`Grant`]s).
    pub fn parse(namespaces: &str, grants_json: &str) -> Result<Self, String> {
        let mut grants: Vec<Grant> = if grants_json.trim().is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(grants_json).map_err(|e| {
                format!("--operator-identity-grants is not a JSON list of grants: {e}")
            })?
        };
        for namespace in namespaces
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            grants.push(Grant {
                namespace: namespace.to_string(),
                scopes: Vec::new(),
                admin_kubeconfig: false,
                aad_token: false,
                run_commands: false,
            });
        }
        for g in &grants {
            if let Some(bad) = g.scopes.iter().find(|s| !is_scope(s)) {
                return Err(format!(
                    "grant for namespace {}: scope {bad:?} is not an ARM resource id prefix naming at least a subscription \
                     (/subscriptions/<id>[/resourceGroups/<name>[/providers/...]]); leave scopes out to grant everything \
                     the identity reaches",
                    g.namespace
                ));
            }
        }
        Ok(Self(grants))
    }

    /// Whether anything is granted at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The grant that applies to `namespace`, if any.
    pub fn for_namespace(&self, namespace: &str) -> Option<&Grant> {
        self.0
            .iter()
            .find(|g| g.namespace == namespace || g.namespace == "*")
    }
}

/// What a resource asks of the operator's identity.
#[derive(Debug, Clone, Copy)]
pub struct Use<'a> {
    pub resource_id: &'a str,
    pub admin_kubeconfig: bool,
    pub aad_token: bool,
    pub run_command: bool,
}

impl Grant {
    /// Refuses (with `Forbidden`, before any ARM request) what this grant does not cover.
    pub fn check(&self, namespace: &str, wanted: Use<'_>) -> Result<(), Failure> {
        let refuse = |what: String| {
            Err(Failure::terminal(
                Reason::Forbidden,
                format!(
                    "the operator's identity is not granted to namespace {namespace} for {what} (--operator-identity-grants)"
                ),
            ))
        };
        if !self.scopes.is_empty() && !self.scopes.iter().any(|s| within(wanted.resource_id, s)) {
            return refuse(format!(
                "{} (granted: {})",
                wanted.resource_id,
                self.scopes.join(", ")
            ));
        }
        if wanted.admin_kubeconfig && !self.admin_kubeconfig {
            return refuse("admin kubeconfigs (role: Admin)".into());
        }
        if wanted.aad_token && !self.aad_token {
            return refuse("its AAD token (authentication: Token)".into());
        }
        if wanted.run_command && !self.run_commands {
            return refuse("running commands (runCommands)".into());
        }
        Ok(())
    }
}

/// A scope names at least one subscription, with no empty or wildcard segment: `/subscriptions/`,
/// `/subscriptions//x` or `/subscriptions/*` would match everything (or nothing anyone meant).
fn is_scope(scope: &str) -> bool {
    let Some(rest) = scope.strip_prefix("/subscriptions/") else {
        return false;
    };
    let segments: Vec<&str> = rest.strip_suffix('/').unwrap_or(rest).split('/').collect();
    !segments.is_empty()
        && segments.iter().all(|s| {
            !s.is_empty()
                && !s.contains('*')
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        })
}

/// `id` is `scope` or below it, compared by whole path segments, case-insensitively (ARM ids are).
fn within(id: &str, scope: &str) -> bool {
    let id = id.trim_end_matches('/').to_ascii_lowercase();
    let scope = scope.trim_end_matches('/').to_ascii_lowercase();
    id == scope || id.starts_with(&format!("{scope}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RG1: &str = "/subscriptions/s1/resourceGroups/rg1";
    const AKS1: &str = "/subscriptions/S1/resourcegroups/RG1/providers/Microsoft.ContainerService/managedClusters/aks1";

    fn wants(id: &str) -> Use<'_> {
        Use {
            resource_id: id,
            admin_kubeconfig: false,
            aad_token: false,
            run_command: false,
        }
    }

    #[test]
    fn nothing_is_granted_by_default() {
        assert_eq!(
            OperatorGrants::parse("", "").unwrap().for_namespace("x"),
            None
        );
    }

    #[test]
    fn namespaces_flag_grants_any_scope_but_no_admin_or_token() {
        let grants = OperatorGrants::parse("a, b", "").unwrap();
        let a = grants.for_namespace("a").unwrap();
        assert!(a.check("a", wants(AKS1)).is_ok());
        assert!(
            a.check(
                "a",
                Use {
                    admin_kubeconfig: true,
                    ..wants(AKS1)
                }
            )
            .is_err()
        );
        assert!(
            a.check(
                "a",
                Use {
                    aad_token: true,
                    ..wants(AKS1)
                }
            )
            .is_err()
        );
        assert_eq!(grants.for_namespace("c"), None);
        assert!(
            OperatorGrants::parse("*", "")
                .unwrap()
                .for_namespace("c")
                .is_some()
        );
    }

    #[test]
    fn scopes_are_whole_segment_prefixes() {
        let json =
            format!(r#"[{{"namespace": "team-a", "scopes": ["{RG1}"], "adminKubeconfig": true}}]"#);
        let grants = OperatorGrants::parse("", &json).unwrap();
        let g = grants.for_namespace("team-a").unwrap();
        assert!(g.check("team-a", wants(AKS1)).is_ok(), "case-insensitive");
        assert!(
            g.check(
                "team-a",
                Use {
                    admin_kubeconfig: true,
                    ..wants(AKS1)
                }
            )
            .is_ok()
        );
        let other_rg = AKS1.replace("RG1", "rg10");
        let refused = g.check("team-a", wants(&other_rg)).unwrap_err();
        assert_eq!(refused.reason, Reason::Forbidden);
        assert!(refused.message.contains("team-a"), "{}", refused.message);
        assert!(
            g.check("team-a", wants("/subscriptions/s2/resourceGroups/rg1"))
                .is_err()
        );
    }

    #[test]
    fn bad_grants_are_refused_at_start() {
        assert!(OperatorGrants::parse("", "not json").is_err());
        assert!(OperatorGrants::parse("", r#"[{"namespace": "a", "scopes": ["rg1"]}]"#).is_err());
        assert!(OperatorGrants::parse("", r#"[{"namespace": "a", "typo": true}]"#).is_err());
    }

    #[test]
    fn scopes_that_match_everything_are_refused() {
        for bad in [
            "/subscriptions/",
            "/subscriptions",
            "/subscriptions//resourceGroups/rg1",
            "/subscriptions/*",
            "/subscriptions/s1/resourceGroups//",
            "/subscriptions/s1/resourceGroups/ rg",
            "/",
            "",
        ] {
            let json = format!(r#"[{{"namespace": "a", "scopes": ["{bad}"]}}]"#);
            assert!(
                OperatorGrants::parse("", &json).is_err(),
                "{bad:?} accepted"
            );
        }
        for good in [RG1, "/subscriptions/s1", "/subscriptions/s1/", AKS1] {
            let json = format!(r#"[{{"namespace": "a", "scopes": ["{good}"]}}]"#);
            assert!(OperatorGrants::parse("", &json).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn running_commands_is_a_grant_of_its_own() {
        let command = |g: &Grant| {
            g.check(
                "a",
                Use {
                    run_command: true,
                    ..wants(AKS1)
                },
            )
        };
        let exports_only = OperatorGrants::parse("a", "").unwrap();
        let refused = command(exports_only.for_namespace("a").unwrap()).unwrap_err();
        assert!(
            refused.message.contains("runCommands"),
            "{}",
            refused.message
        );
        let json = format!(r#"[{{"namespace": "a", "scopes": ["{RG1}"], "runCommands": true}}]"#);
        let grants = OperatorGrants::parse("", &json).unwrap();
        assert!(command(grants.for_namespace("a").unwrap()).is_ok());
    }
}
