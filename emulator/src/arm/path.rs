//! Parses ARM request paths into the routes the emulator serves (case-insensitive, like ARM).

use percent_encoding::percent_decode_str;

use crate::world::ResourceKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgScope {
    pub sub: String,
    pub rg: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAction {
    Get,
    RunCommand,
    CommandResult(String),
    ListUser,
    ListAdmin,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /subscriptions`: the subscriptions the caller may see.
    Subscriptions,
    /// `GET /subscriptions/{id}`.
    Subscription { sub: String },
    Cluster {
        scope: RgScope,
        name: String,
        action: ClusterAction,
    },
    Container {
        scope: RgScope,
        group: String,
        container: String,
        /// `exec`, `logs` or anything else.
        action: String,
    },
    /// A container group path that is not a container action: the group itself (`whole`, its
    /// GET) or something under it (for 404s).
    ContainerGroup {
        scope: RgScope,
        group: String,
        whole: bool,
    },
    HybridList {
        scope: RgScope,
        cluster: String,
        admin: bool,
    },
    HybridPoll {
        /// The subscription of a subscription-level operation URL (its polls are charged to that
        /// subscription); `None` for a tenant-level one.
        sub: Option<String>,
        location: String,
        id: String,
        /// `operationResults` (Location) rather than `operationStatuses` (Azure-AsyncOperation).
        result: bool,
    },
    /// `GET` of a resource collection: a subscription's (`rg` None) or a resource group's.
    List {
        sub: String,
        rg: Option<String>,
        kind: ResourceKind,
    },
    /// `Microsoft.Kubernetes/connectedClusters/{name}` itself.
    ConnectedCluster { scope: RgScope, name: String },
    /// Anything else; carries what scope it names so the right 404 can be chosen.
    Other {
        sub: Option<String>,
        rg: Option<String>,
        /// `(namespace, type, name)` of a top-level resource under the resource group.
        resource: Option<(String, String, String)>,
    },
}

fn is(s: &str, want: &str) -> bool {
    s.eq_ignore_ascii_case(want)
}

/// The resource type `{namespace}/{type}` of a listable collection.
pub fn listable(ns: &str, ty: &str) -> Option<ResourceKind> {
    [
        (
            "Microsoft.ContainerService",
            "managedClusters",
            ResourceKind::ManagedClusters,
        ),
        (
            "Microsoft.Kubernetes",
            "connectedClusters",
            ResourceKind::ConnectedClusters,
        ),
        (
            "Microsoft.ContainerInstance",
            "containerGroups",
            ResourceKind::ContainerGroups,
        ),
    ]
    .into_iter()
    .find(|(n, t, _)| is(ns, n) && is(ty, t))
    .map(|(_, _, kind)| kind)
}

impl ResourceKind {
    /// `{namespace}/{type}` as ARM spells it in ids and RBAC actions.
    pub fn arm_type(self) -> &'static str {
        match self {
            ResourceKind::ManagedClusters => "Microsoft.ContainerService/managedClusters",
            ResourceKind::ConnectedClusters => "Microsoft.Kubernetes/connectedClusters",
            ResourceKind::ContainerGroups => "Microsoft.ContainerInstance/containerGroups",
        }
    }
}

pub fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

pub fn parse(path: &str) -> Route {
    let s = segments(path);
    let seg = |i: usize| s.get(i).map(String::as_str).unwrap_or("");
    let n = s.len();
    // Tenant-level operation status: providers/Microsoft.HybridContainerService/locations/{loc}/operation*/{id}
    let hybrid_poll = |off: usize| -> Option<Route> {
        if n == off + 6
            && is(seg(off), "providers")
            && is(seg(off + 1), "Microsoft.HybridContainerService")
            && is(seg(off + 2), "locations")
            && (is(seg(off + 4), "operationStatuses") || is(seg(off + 4), "operationResults"))
        {
            Some(Route::HybridPoll {
                sub: (off == 2).then(|| seg(1).to_string()),
                location: seg(off + 3).to_string(),
                id: seg(off + 5).to_string(),
                result: is(seg(off + 4), "operationResults"),
            })
        } else {
            None
        }
    };
    if let Some(r) = hybrid_poll(0) {
        return r;
    }
    if is(seg(0), "subscriptions") && (n == 1 || (n == 2 && seg(1).is_empty())) {
        return Route::Subscriptions;
    }
    if is(seg(0), "subscriptions") && n == 2 {
        return Route::Subscription {
            sub: seg(1).to_string(),
        };
    }
    if !is(seg(0), "subscriptions") || n < 2 {
        return Route::Other {
            sub: None,
            rg: None,
            resource: None,
        };
    }
    let sub = seg(1).to_string();
    if let Some(r) = hybrid_poll(2) {
        return r;
    }
    if n == 5
        && is(seg(2), "providers")
        && let Some(kind) = listable(seg(3), seg(4))
    {
        return Route::List {
            sub,
            rg: None,
            kind,
        };
    }
    if !is(seg(2), "resourceGroups") || n < 4 {
        return Route::Other {
            sub: Some(sub),
            rg: None,
            resource: None,
        };
    }
    let scope = RgScope {
        sub: sub.clone(),
        rg: seg(3).to_string(),
    };
    let other = |resource| Route::Other {
        sub: Some(sub.clone()),
        rg: Some(seg(3).to_string()),
        resource,
    };
    if n == 7
        && is(seg(4), "providers")
        && let Some(kind) = listable(seg(5), seg(6))
    {
        return Route::List {
            sub: sub.clone(),
            rg: Some(seg(3).to_string()),
            kind,
        };
    }
    if n < 8 || !is(seg(4), "providers") {
        return other(None);
    }
    let (ns, ty, name) = (seg(5), seg(6), seg(7).to_string());
    let rest: Vec<&str> = s[8..].iter().map(String::as_str).collect();
    if is(ns, "Microsoft.ContainerService") && is(ty, "managedClusters") {
        let action = match rest.as_slice() {
            [] => ClusterAction::Get,
            [a] if is(a, "runCommand") => ClusterAction::RunCommand,
            [a] if is(a, "listClusterUserCredential") => ClusterAction::ListUser,
            [a] if is(a, "listClusterAdminCredential") => ClusterAction::ListAdmin,
            [a, id] if is(a, "commandResults") => ClusterAction::CommandResult(id.to_string()),
            _ => ClusterAction::Other,
        };
        return Route::Cluster {
            scope,
            name,
            action,
        };
    }
    if is(ns, "Microsoft.ContainerInstance") && is(ty, "containerGroups") {
        return match rest.as_slice() {
            [c, container, action] if is(c, "containers") => Route::Container {
                scope,
                group: name,
                container: container.to_string(),
                action: action.to_string(),
            },
            _ => Route::ContainerGroup {
                scope,
                group: name,
                whole: rest.is_empty(),
            },
        };
    }
    if is(ns, "Microsoft.Kubernetes")
        && is(ty, "connectedClusters")
        && let [p, hns, pci, def, action] = rest.as_slice()
        && is(p, "providers")
        && is(hns, "Microsoft.HybridContainerService")
        && is(pci, "provisionedClusterInstances")
        && is(def, "default")
        && (is(action, "listUserKubeconfig") || is(action, "listAdminKubeconfig"))
    {
        return Route::HybridList {
            scope,
            cluster: name,
            admin: is(action, "listAdminKubeconfig"),
        };
    }
    if is(ns, "Microsoft.Kubernetes") && is(ty, "connectedClusters") && rest.is_empty() {
        return Route::ConnectedCluster { scope, name };
    }
    other(Some((ns.to_string(), ty.to_string(), name)))
}

impl Route {
    /// The operation name used by faults, counters and the request log.
    pub fn op(&self, method: &str) -> &'static str {
        let get = method == "GET";
        let post = method == "POST";
        match self {
            Route::Subscriptions if get => "arm.listSubscriptions",
            Route::Subscription { .. } if get => "arm.getSubscription",
            Route::Cluster { action, .. } => match action {
                ClusterAction::Get if get => "aks.get",
                ClusterAction::RunCommand if post => "aks.runCommand",
                ClusterAction::CommandResult(_) if get => "aks.commandResult",
                ClusterAction::ListUser if post => "aks.listUserCredential",
                ClusterAction::ListAdmin if post => "aks.listAdminCredential",
                _ => "arm.other",
            },
            Route::Container { action, .. } if post && is(action, "exec") => "aci.exec",
            Route::Container { action, .. } if get && is(action, "logs") => "aci.logs",
            Route::HybridList { .. } if post => "hybrid.listKubeconfig",
            Route::ContainerGroup { whole: true, .. } if get => "aci.get",
            Route::HybridPoll { result: false, .. } if get => "hybrid.operationStatus",
            Route::HybridPoll { result: true, .. } if get => "hybrid.operationResult",
            Route::List { kind, .. } if get => match kind {
                ResourceKind::ManagedClusters => "aks.list",
                ResourceKind::ConnectedClusters => "arc.list",
                ResourceKind::ContainerGroups => "aci.list",
            },
            Route::ConnectedCluster { .. } if get => "arc.get",
            _ => "arm.other",
        }
    }

    pub fn subscription(&self) -> Option<&str> {
        match self {
            Route::Cluster { scope, .. }
            | Route::Container { scope, .. }
            | Route::ContainerGroup { scope, .. }
            | Route::HybridList { scope, .. }
            | Route::ConnectedCluster { scope, .. } => Some(&scope.sub),
            Route::List { sub, .. } => Some(sub),
            Route::Subscription { sub } => Some(sub),
            Route::HybridPoll { sub, .. } => sub.as_deref(),
            Route::Subscriptions => None,
            Route::Other { sub, .. } => sub.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RG: &str = "/subscriptions/s1/resourcegroups/rg1/providers";

    #[test]
    fn aks_routes() {
        let r = parse(&format!(
            "{RG}/microsoft.containerservice/MANAGEDCLUSTERS/aks1/runcommand"
        ));
        assert_eq!(r.op("POST"), "aks.runCommand");
        let r = parse(&format!(
            "{RG}/Microsoft.ContainerService/managedClusters/aks1/commandResults/abc"
        ));
        assert!(
            matches!(r, Route::Cluster { action: ClusterAction::CommandResult(ref id), .. } if id == "abc")
        );
        assert_eq!(
            parse(&format!(
                "{RG}/Microsoft.ContainerService/managedClusters/aks1"
            ))
            .op("GET"),
            "aks.get"
        );
        assert_eq!(
            parse(&format!(
                "{RG}/Microsoft.ContainerService/managedClusters/aks1"
            ))
            .op("POST"),
            "arm.other"
        );
    }

    #[test]
    fn aci_and_hybrid_routes() {
        let r = parse(&format!(
            "{RG}/Microsoft.ContainerInstance/containerGroups/cg/containers/app/exec"
        ));
        assert_eq!(r.op("POST"), "aci.exec");
        let r = parse(&format!(
            "{RG}/Microsoft.Kubernetes/connectedClusters/arc1/providers/Microsoft.HybridContainerService/provisionedClusterInstances/default/listAdminKubeconfig"
        ));
        assert!(matches!(r, Route::HybridList { admin: true, .. }));
        let r = parse(
            "/providers/Microsoft.HybridContainerService/locations/westeurope/operationStatuses/a%2Ab",
        );
        assert_eq!(
            r,
            Route::HybridPoll {
                sub: None,
                location: "westeurope".into(),
                id: "a*b".into(),
                result: false
            }
        );
        assert_eq!(r.subscription(), None);
        let r = parse(
            "/subscriptions/s1/providers/Microsoft.HybridContainerService/locations/westeurope/operationResults/x",
        );
        assert_eq!(r.subscription(), Some("s1"), "charged to the subscription");
        assert_eq!(r.op("GET"), "hybrid.operationResult");
        let r = parse(&format!(
            "{RG}/Microsoft.ContainerInstance/containerGroups/cg"
        ));
        assert_eq!(r.op("GET"), "aci.get");
        let r = parse(&format!(
            "{RG}/Microsoft.ContainerInstance/containerGroups/cg/restart"
        ));
        assert_eq!(r.op("GET"), "arm.other");
    }

    #[test]
    fn subscription_routes() {
        assert_eq!(parse("/subscriptions"), Route::Subscriptions);
        assert_eq!(parse("/Subscriptions").op("GET"), "arm.listSubscriptions");
        assert_eq!(parse("/subscriptions").subscription(), None);
        let r = parse("/subscriptions/s1");
        assert_eq!(r, Route::Subscription { sub: "s1".into() });
        assert_eq!(r.op("GET"), "arm.getSubscription");
        assert_eq!(r.op("DELETE"), "arm.other");
        assert_eq!(r.subscription(), Some("s1"));
        assert!(matches!(
            parse("/subscriptions/s1/resourceGroups"),
            Route::Other { .. }
        ));
    }

    #[test]
    fn list_routes() {
        let r = parse("/subscriptions/s1/providers/microsoft.containerservice/MANAGEDCLUSTERS");
        assert_eq!(
            r,
            Route::List {
                sub: "s1".into(),
                rg: None,
                kind: ResourceKind::ManagedClusters
            }
        );
        assert_eq!(r.op("GET"), "aks.list");
        assert_eq!(r.op("POST"), "arm.other");
        assert_eq!(r.subscription(), Some("s1"));
        let r = parse(&format!("{RG}/Microsoft.Kubernetes/connectedClusters"));
        assert!(matches!(r, Route::List { rg: Some(ref g), .. } if g == "rg1"));
        assert_eq!(r.op("GET"), "arc.list");
        let r = parse("/subscriptions/s1/providers/Microsoft.ContainerInstance/containerGroups");
        assert_eq!(r.op("GET"), "aci.list");
        let r = parse(&format!("{RG}/Microsoft.Kubernetes/connectedClusters/arc1"));
        assert_eq!(r.op("GET"), "arc.get");
        assert!(matches!(
            parse("/subscriptions/s1/providers/Microsoft.Compute/virtualMachines"),
            Route::Other { .. }
        ));
    }

    #[test]
    fn other_paths_keep_scope() {
        let r = parse(
            "/subscriptions/s1/resourceGroups/rg9/providers/Microsoft.Compute/virtualMachines/vm",
        );
        assert!(matches!(r, Route::Other { rg: Some(ref g), resource: Some(_), .. } if g == "rg9"));
        assert_eq!(parse("/foo").subscription(), None);
    }
}
