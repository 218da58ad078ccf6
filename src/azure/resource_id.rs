//! ARM resource IDs of the three resource kinds the operator targets: parsing, validation, patterns.

use std::fmt;
use std::str::FromStr;

/// `/subscriptions/<guid>/resourceGroups/<rg>/providers/` with case-insensitive keywords.
macro_rules! prefix_pattern {
    () => {
        concat!(
            "^/[Ss][Uu][Bb][Ss][Cc][Rr][Ii][Pp][Tt][Ii][Oo][Nn][Ss]/",
            "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            "/[Rr][Ee][Ss][Oo][Uu][Rr][Cc][Ee][Gg][Rr][Oo][Uu][Pp][Ss]/",
            "[-a-zA-Z0-9_.()]{0,89}[-a-zA-Z0-9_()]",
            "/[Pp][Rr][Oo][Vv][Ii][Dd][Ee][Rr][Ss]/"
        )
    };
}

/// Name of an AKS cluster or Arc connected cluster: 1–63, alphanumerics, `-` and `_` inside.
macro_rules! cluster_name_pattern {
    () => {
        "(?:[a-zA-Z0-9]|[a-zA-Z0-9][-_a-zA-Z0-9]{0,61}[a-zA-Z0-9])$"
    };
}

/// Anchored, ECMA-262/RE2 compatible pattern of an AKS managed cluster ID (for CRD schemas).
pub const AKS_CLUSTER_ID_PATTERN: &str = concat!(
    prefix_pattern!(),
    "[Mm][Ii][Cc][Rr][Oo][Ss][Oo][Ff][Tt]\\.[Cc][Oo][Nn][Tt][Aa][Ii][Nn][Ee][Rr][Ss][Ee][Rr][Vv][Ii][Cc][Ee]",
    "/[Mm][Aa][Nn][Aa][Gg][Ee][Dd][Cc][Ll][Uu][Ss][Tt][Ee][Rr][Ss]/",
    cluster_name_pattern!()
);

/// Anchored pattern of an ACI container group ID.
pub const CONTAINER_GROUP_ID_PATTERN: &str = concat!(
    prefix_pattern!(),
    "[Mm][Ii][Cc][Rr][Oo][Ss][Oo][Ff][Tt]\\.[Cc][Oo][Nn][Tt][Aa][Ii][Nn][Ee][Rr][Ii][Nn][Ss][Tt][Aa][Nn][Cc][Ee]",
    "/[Cc][Oo][Nn][Tt][Aa][Ii][Nn][Ee][Rr][Gg][Rr][Oo][Uu][Pp][Ss]/",
    "[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$"
);

/// Anchored pattern of an ACI container name (given next to the group ID).
pub const CONTAINER_NAME_PATTERN: &str = "^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$";

/// Anchored pattern of an Arc-enabled Kubernetes connected cluster ID.
pub const CONNECTED_CLUSTER_ID_PATTERN: &str = concat!(
    prefix_pattern!(),
    "[Mm][Ii][Cc][Rr][Oo][Ss][Oo][Ff][Tt]\\.[Kk][Uu][Bb][Ee][Rr][Nn][Ee][Tt][Ee][Ss]",
    "/[Cc][Oo][Nn][Nn][Ee][Cc][Tt][Ee][Dd][Cc][Ll][Uu][Ss][Tt][Ee][Rr][Ss]/",
    cluster_name_pattern!()
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} resource ID: {reason}")]
pub struct InvalidResourceId {
    pub kind: &'static str,
    pub reason: String,
}

/// Subscription and resource group, shared by every ID here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    pub subscription_id: String,
    pub resource_group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AksClusterId {
    pub scope: ResourceScope,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerGroupId {
    pub scope: ResourceScope,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectedClusterId {
    pub scope: ResourceScope,
    pub name: String,
}

struct Kind {
    label: &'static str,
    namespace: &'static str,
    resource_type: &'static str,
    name_ok: fn(&str) -> bool,
    name_rule: &'static str,
}

const AKS: Kind = Kind {
    label: "AKS cluster",
    namespace: "Microsoft.ContainerService",
    resource_type: "managedClusters",
    name_ok: is_cluster_name,
    name_rule: "1-63 letters, digits, '-' or '_', starting and ending with a letter or digit",
};

const ACI: Kind = Kind {
    label: "container group",
    namespace: "Microsoft.ContainerInstance",
    resource_type: "containerGroups",
    name_ok: is_container_name,
    name_rule: "1-63 lower-case letters, digits or '-', starting and ending with a letter or digit",
};

const ARC: Kind = Kind {
    label: "connected cluster",
    namespace: "Microsoft.Kubernetes",
    resource_type: "connectedClusters",
    name_ok: is_cluster_name,
    name_rule: "1-63 letters, digits, '-' or '_', starting and ending with a letter or digit",
};

fn parse(kind: &Kind, id: &str) -> Result<(ResourceScope, String), InvalidResourceId> {
    let fail = |reason: String| InvalidResourceId {
        kind: kind.label,
        reason,
    };
    let expected = format!(
        "expected /subscriptions/<subscription GUID>/resourceGroups/<group>/providers/{}/{}/<name>",
        kind.namespace, kind.resource_type
    );
    let Some(rest) = id.strip_prefix('/') else {
        return Err(fail(format!("must start with '/'; {expected}")));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [
        subs,
        sub,
        rgs,
        rg,
        providers,
        namespace,
        resource_type,
        name,
    ] = parts[..]
    else {
        return Err(fail(expected));
    };
    let keywords_ok = subs.eq_ignore_ascii_case("subscriptions")
        && rgs.eq_ignore_ascii_case("resourceGroups")
        && providers.eq_ignore_ascii_case("providers")
        && namespace.eq_ignore_ascii_case(kind.namespace)
        && resource_type.eq_ignore_ascii_case(kind.resource_type);
    if !keywords_ok {
        return Err(fail(expected));
    }
    if !is_guid(sub) {
        return Err(fail(format!("subscription '{sub}' is not a GUID")));
    }
    if !is_resource_group(rg) {
        return Err(fail(format!(
            "resource group '{rg}' must be 1-90 letters, digits, '-', '_', '.', '(' or ')' and not end with '.'"
        )));
    }
    if !(kind.name_ok)(name) {
        return Err(fail(format!("name '{name}' must be {}", kind.name_rule)));
    }
    Ok((
        ResourceScope {
            subscription_id: sub.to_string(),
            resource_group: rg.to_string(),
        },
        name.to_string(),
    ))
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_resource_group(s: &str) -> bool {
    (1..=90).contains(&s.len())
        && !s.ends_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c))
}

fn is_cluster_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge_ok = |b: &u8| b.is_ascii_alphanumeric();
    (1..=63).contains(&s.len())
        && bytes.first().is_some_and(edge_ok)
        && bytes.last().is_some_and(edge_ok)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// ACI container group and container names.
pub fn is_container_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&s.len())
        && bytes.first().is_some_and(edge_ok)
        && bytes.last().is_some_and(edge_ok)
        && bytes.iter().all(|b| edge_ok(b) || *b == b'-')
}

impl ResourceScope {
    fn write(
        &self,
        f: &mut fmt::Formatter<'_>,
        namespace: &str,
        resource_type: &str,
        name: &str,
    ) -> fmt::Result {
        write!(
            f,
            "/subscriptions/{}/resourceGroups/{}/providers/{namespace}/{resource_type}/{name}",
            self.subscription_id, self.resource_group
        )
    }
}

macro_rules! resource_id_impls {
    ($ty:ident, $kind:ident) => {
        impl $ty {
            pub fn subscription_id(&self) -> &str {
                &self.scope.subscription_id
            }
        }

        impl FromStr for $ty {
            type Err = InvalidResourceId;
            fn from_str(id: &str) -> Result<Self, Self::Err> {
                parse(&$kind, id).map(|(scope, name)| $ty { scope, name })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.scope
                    .write(f, $kind.namespace, $kind.resource_type, &self.name)
            }
        }
    };
}

resource_id_impls!(AksClusterId, AKS);
resource_id_impls!(ContainerGroupId, ACI);
resource_id_impls!(ConnectedClusterId, ARC);

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-1111-2222-3333-444444444444";

    /// (id, valid as AKS, valid as container group, valid as connected cluster)
    fn table() -> Vec<(String, bool, bool, bool)> {
        let aks = |rg: &str, name: &str| {
            format!(
                "/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"
            )
        };
        let aci = |name: &str| {
            format!(
                "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/{name}"
            )
        };
        let arc = |name: &str| {
            format!(
                "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/{name}"
            )
        };
        vec![
            (aks("rg1", "clustername1"), true, false, false),
            (aks("My_RG-(prod).1", "a"), true, false, false),
            (aks(&"r".repeat(90), &"c".repeat(63)), true, false, false),
            (aks(&"r".repeat(91), "c"), false, false, false),
            (aks("rg.", "c"), false, false, false),
            (aks("", "c"), false, false, false),
            (aks("rg/x", "c"), false, false, false),
            (aks("rg", &"c".repeat(64)), false, false, false),
            (aks("rg", "-c"), false, false, false),
            (aks("rg", "c_"), false, false, false),
            (aks("rg", "a_b-c"), true, false, false),
            (aks("rg space", "c"), false, false, false),
            (format!("{}/", aks("rg", "c")), false, false, false),
            (format!("{}/extra", aks("rg", "c")), false, false, false),
            (
                aks("rg", "c").trim_start_matches('/').to_string(),
                false,
                false,
                false,
            ),
            (
                format!(
                    "/SUBSCRIPTIONS/{SUB}/resourcegroups/rg/PROVIDERS/microsoft.containerservice/MANAGEDCLUSTERS/c"
                ),
                true,
                false,
                false,
            ),
            (
                "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c".to_string(),
                false,
                false,
                false,
            ),
            (
                "/subscriptions/0000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c".to_string(),
                false,
                false,
                false,
            ),
            (aci("group-1"), false, true, false),
            (aci("Group"), false, false, false),
            (aci("group-"), false, false, false),
            (aci("g"), false, true, false),
            (arc("edge-01"), false, false, true),
            (arc("edge_01"), false, false, true),
            (String::new(), false, false, false),
            (format!("/subscriptions/{SUB}"), false, false, false),
        ]
    }

    #[test]
    fn parser_and_patterns_agree_with_the_table() {
        let aks_re = regex::Regex::new(AKS_CLUSTER_ID_PATTERN).unwrap();
        let aci_re = regex::Regex::new(CONTAINER_GROUP_ID_PATTERN).unwrap();
        let arc_re = regex::Regex::new(CONNECTED_CLUSTER_ID_PATTERN).unwrap();
        for (id, aks, aci, arc) in table() {
            assert_eq!(id.parse::<AksClusterId>().is_ok(), aks, "parser, AKS: {id}");
            assert_eq!(aks_re.is_match(&id), aks, "pattern, AKS: {id}");
            assert_eq!(
                id.parse::<ContainerGroupId>().is_ok(),
                aci,
                "parser, ACI: {id}"
            );
            assert_eq!(aci_re.is_match(&id), aci, "pattern, ACI: {id}");
            assert_eq!(
                id.parse::<ConnectedClusterId>().is_ok(),
                arc,
                "parser, Arc: {id}"
            );
            assert_eq!(arc_re.is_match(&id), arc, "pattern, Arc: {id}");
        }
    }

    #[test]
    fn container_name_pattern_agrees() {
        let re = regex::Regex::new(CONTAINER_NAME_PATTERN).unwrap();
        for (name, ok) in [
            ("app", true),
            ("a-1", true),
            ("A", false),
            ("-a", false),
            ("", false),
            ("a b", false),
        ] {
            assert_eq!(is_container_name(name), ok, "{name}");
            assert_eq!(re.is_match(name), ok, "{name}");
        }
        assert!(re.is_match(&"a".repeat(63)));
        assert!(!re.is_match(&"a".repeat(64)));
    }

    #[test]
    fn display_is_canonical() {
        let id: AksClusterId =
            format!("/SUBSCRIPTIONS/{SUB}/resourcegroups/rg/providers/microsoft.containerservice/managedclusters/c1")
                .parse()
                .unwrap();
        assert_eq!(
            id.to_string(),
            format!(
                "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c1"
            )
        );
        assert_eq!(id.subscription_id(), SUB);
        let arc: ConnectedClusterId =
            format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/e")
                .parse()
                .unwrap();
        assert!(arc.to_string().starts_with("/subscriptions/"));
    }

    #[test]
    fn errors_explain_the_rule() {
        let err = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/-x")
            .parse::<AksClusterId>()
            .unwrap_err();
        assert!(err.to_string().contains("name '-x' must be"), "{err}");
    }
}
