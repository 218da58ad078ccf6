//! ARM list operations: every resource of one type in a subscription or a resource group, page by
//! page. A page is `{"value": [...], "nextLink": "..."}`; the next page is `nextLink` as given (it
//! carries its own api-version and skip token), until a page has none — what the Azure SDKs'
//! pagers do (azure-sdk-for-python `ItemPaged`, azure-sdk-for-go `runtime.Pager`). The per-type
//! list operations take no tag filter (azure-rest-api-specs: `ManagedClusters_List`,
//! `ContainerGroups_List` have only `api-version`), so tags are matched by the caller. Each page
//! is one read from the subscription's budget, and `nextLink` must point at the ARM endpoint (the
//! bearer token goes with it; [`ArmClient`] refuses any other host).

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;

use super::client::{ArmClient, ArmRequest, CallContext, Target, expect_json};
use super::error::ArmError;

/// A resource type that can be listed, with the operations' names and api-version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listable {
    /// `Microsoft.ContainerService/managedClusters`.
    pub provider_type: &'static str,
    /// Operation name of the subscription-wide list (metrics, errors).
    pub by_subscription: &'static str,
    /// Operation name of the per-resource-group list.
    pub by_resource_group: &'static str,
    pub api_version: &'static str,
    /// Only resources of this `kind` (compared without regard to case); `None`: every one.
    pub kind: Option<&'static str>,
}

impl Listable {
    /// Whether a listed resource of `kind` is one of these.
    pub fn selects_kind(&self, kind: Option<&str>) -> bool {
        match self.kind {
            None => true,
            Some(want) => kind.is_some_and(|k| k.eq_ignore_ascii_case(want)),
        }
    }
}

/// AKS clusters.
pub const MANAGED_CLUSTERS: Listable = Listable {
    provider_type: "Microsoft.ContainerService/managedClusters",
    by_subscription: "ManagedClusters_List",
    by_resource_group: "ManagedClusters_ListByResourceGroup",
    api_version: super::aks::DEFAULT_API_VERSION,
    kind: None,
};

/// Azure Container Instances container groups.
pub const CONTAINER_GROUPS: Listable = Listable {
    provider_type: "Microsoft.ContainerInstance/containerGroups",
    by_subscription: "ContainerGroups_List",
    by_resource_group: "ContainerGroups_ListByResourceGroup",
    api_version: super::aci::DEFAULT_API_VERSION,
    kind: None,
};

/// Arc-connected clusters that are AKS enabled by Azure Arc: HybridKubernetes lists every
/// connected cluster, and only those of kind `ProvisionedCluster` have the HybridContainerService
/// provisioned cluster whose kubeconfig can be listed (azure-rest-api-specs: hybridkubernetes
/// `ConnectedCluster_ListBySubscription`, stable 2024-01-01; the `kind` property).
pub const CONNECTED_CLUSTERS: Listable = Listable {
    provider_type: "Microsoft.Kubernetes/connectedClusters",
    by_subscription: "ConnectedCluster_ListBySubscription",
    by_resource_group: "ConnectedCluster_ListByResourceGroup",
    api_version: "2024-01-01",
    kind: Some("ProvisionedCluster"),
};

/// One listed resource: its id, kind and tags (the rest of its body is not kept).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Listed {
    pub id: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    value: Vec<Listed>,
    #[serde(default)]
    next_link: Option<String>,
}

/// Pages followed at most: ARM pages hold tens to a thousand items, so this is far beyond any
/// listing below `max_items`, and stops a `nextLink` that never ends.
const MAX_PAGES: usize = 1000;

/// Every `kind` resource in subscription `subscription` (or only in `resource_group`), at most
/// `max_items` of them (more is an error: the caller's bound, said with the count seen).
pub async fn list(
    arm: &ArmClient,
    ctx: &CallContext,
    kind: Listable,
    subscription: &str,
    resource_group: Option<&str>,
    max_items: usize,
) -> Result<Vec<Listed>, ArmError> {
    let (operation, path) = match resource_group {
        None => (
            kind.by_subscription,
            format!(
                "/subscriptions/{subscription}/providers/{}",
                kind.provider_type
            ),
        ),
        Some(rg) => (
            kind.by_resource_group,
            format!(
                "/subscriptions/{subscription}/resourceGroups/{rg}/providers/{}",
                kind.provider_type
            ),
        ),
    };
    let mut request = ArmRequest::path(operation, Method::GET, path, kind.api_version);
    let mut found = Vec::new();
    for _ in 0..MAX_PAGES {
        let response = arm.send(ctx, request).await?;
        let page: Page = expect_json(&response, operation)?;
        found.extend(page.value);
        if found.len() > max_items {
            return Err(ArmError::invalid_response(
                operation,
                format!("more than {max_items} resources listed"),
            ));
        }
        let Some(next) = page.next_link.filter(|l| !l.is_empty()) else {
            return Ok(found);
        };
        let url = next.parse().map_err(|e| {
            ArmError::invalid_response(operation, format!("nextLink is not a URL: {e}"))
        })?;
        request = ArmRequest::new(operation, Method::GET, Target::Url(url));
    }
    Err(ArmError::invalid_response(
        operation,
        format!("nextLink still set after {MAX_PAGES} pages"),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::routing::get;
    use serde_json::{Value, json};

    use super::*;
    use crate::azure::testutil::{self, ctx, serve};

    const SUB: &str = "00000000-1111-2222-3333-444444444444";

    #[derive(Default)]
    struct Pages {
        served: AtomicUsize,
        base: std::sync::Mutex<String>,
        next_host: std::sync::Mutex<Option<String>>,
    }

    /// Three pages of two clusters; the last without nextLink.
    async fn page(
        State(p): State<Arc<Pages>>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::Json<Value> {
        p.served.fetch_add(1, Ordering::SeqCst);
        let skip: usize = q
            .get("$skipToken")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let value: Vec<Value> = (skip..skip + 2)
            .map(|i| json!({"id": format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-{i}"), "tags": {"env": if i % 2 == 0 {"prod"} else {"dev"}}}))
            .collect();
        let host = p
            .next_host
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| p.base.lock().unwrap().clone());
        let mut body = json!({ "value": value });
        if skip < 4 {
            body["nextLink"] = json!(format!(
                "{host}/subscriptions/{SUB}/providers/Microsoft.ContainerService/managedClusters?api-version=2025-10-01&$skipToken={}",
                skip + 2
            ));
        }
        axum::Json(body)
    }

    async fn fake() -> (ArmClient, Arc<Pages>) {
        let pages = Arc::new(Pages::default());
        let router = Router::new()
            .route(
                "/subscriptions/{sub}/providers/Microsoft.ContainerService/managedClusters",
                get(page),
            )
            .with_state(pages.clone());
        let base = serve(router).await;
        *pages.base.lock().unwrap() = base.clone();
        (testutil::client(&base), pages)
    }

    /// Every managed cluster of subscription `SUB`, at most `max_items`.
    async fn list_subscription(arm: &ArmClient, max_items: usize) -> Result<Vec<Listed>, ArmError> {
        list(
            arm,
            &ctx(Duration::from_secs(10)),
            MANAGED_CLUSTERS,
            SUB,
            None,
            max_items,
        )
        .await
    }

    #[tokio::test]
    async fn follows_next_link_to_the_last_page_one_read_each() {
        let (arm, pages) = fake().await;
        let found = list_subscription(&arm, 100).await.unwrap();
        assert_eq!(found.len(), 6);
        assert_eq!(pages.served.load(Ordering::SeqCst), 3);
        assert!(found[5].id.ends_with("/aks-5"));
        assert_eq!(found[0].tags.as_ref().unwrap()["env"], "prod");
    }

    #[tokio::test]
    async fn more_than_the_bound_is_an_error_not_a_partial_list() {
        let (arm, _) = fake().await;
        let err = list_subscription(&arm, 3).await.unwrap_err();
        assert!(err.to_string().contains("more than 3"), "{err}");
    }

    #[tokio::test]
    async fn a_next_link_to_another_host_is_refused_without_sending_the_token_there() {
        let (arm, pages) = fake().await;
        *pages.next_host.lock().unwrap() = Some("http://elsewhere.invalid".into());
        let err = list_subscription(&arm, 100).await.unwrap_err();
        assert!(err.to_string().contains("not the ARM endpoint"), "{err}");
        assert_eq!(pages.served.load(Ordering::SeqCst), 1);
    }
}
