//! List operations like ARM's: managed clusters, connected clusters and container groups per
//! subscription and resource group, nextLink paging, tags, generated resource sets, each page a
//! read from the subscription's bucket, list faults and resources changed at run time.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

const SUB2: &str = "00000000-0000-0000-0000-000000000002";

/// 250 managed clusters over two resource groups of one subscription, a second subscription,
/// connected clusters and container groups, all generated.
const FLEET: &str = r#"
tenants: [{id: 00000000-0000-0000-0000-000000000001}]
principals:
  - {tenantId: 00000000-0000-0000-0000-000000000001, clientId: 11111111-1111-1111-1111-111111111111, clientSecret: emulator-secret}
subscriptions:
  - id: 00000000-0000-0000-0000-000000000000
    resourceGroups:
      - name: rg1
        managedClusters: [{name: aks1}]
        managedClusterSets:
          - {count: 149, namePattern: "prod-{i:03}", tags: {env: prod}, kubernetesVersion: "1.32.1"}
        containerGroupSets:
          - {count: 120, namePattern: "cg-{i}", tags: {team: a}, containers: [{name: app}]}
      - name: rg2
        location: northeurope
        managedClusterSets:
          - {count: 100, namePattern: "dev-{i:03}", tags: {env: dev}}
        connectedClusterSets:
          - {count: 30, namePattern: "arc-{i:02}", tags: {site: edge}}
  - id: 00000000-0000-0000-0000-000000000002
    resourceGroups:
      - name: rg1
        managedClusterSets: [{count: 5, namePattern: "other-{i}"}]
"#;

const MC: &str = "Microsoft.ContainerService/managedClusters";

fn list_url(emu: &Emulator, sub: &str, rg: Option<&str>, ty: &str, v: &str) -> String {
    match rg {
        Some(rg) => emu.url(&format!(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/{ty}?api-version={v}"
        )),
        None => emu.url(&format!(
            "/subscriptions/{sub}/providers/{ty}?api-version={v}"
        )),
    }
}

async fn get(emu: &Emulator, token: &str, url: &str) -> reqwest::Response {
    emu.http.get(url).bearer_auth(token).send().await.unwrap()
}

/// Every page of a listing, following nextLink as given, with the remaining-reads header of each.
async fn pages(emu: &Emulator, token: &str, first: &str) -> Vec<(Value, u64)> {
    let mut out = Vec::new();
    let mut url = first.to_string();
    loop {
        let r = get(emu, token, &url).await;
        assert_eq!(r.status(), 200, "{url}");
        let left = r.headers()["x-ms-ratelimit-remaining-subscription-reads"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let page = json_of(r).await;
        let next = page
            .get("nextLink")
            .and_then(Value::as_str)
            .map(String::from);
        out.push((page, left));
        match next {
            Some(n) => {
                assert!(n.starts_with(&emu.base), "absolute, on the emulator: {n}");
                assert!(
                    n.contains("api-version=") && n.contains("$skiptoken="),
                    "{n}"
                );
                url = n;
            }
            None => return out,
        }
        assert!(out.len() < 100, "paging does not end");
    }
}

fn items(pages: &[(Value, u64)]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|(p, _)| p["value"].as_array().unwrap().clone())
        .collect()
}

fn names(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

async fn fleet() -> (Emulator, String) {
    let emu = start(&[]);
    emu.put_world(FLEET).await;
    let t = emu.arm_token().await;
    (emu, t)
}

#[tokio::test]
async fn a_subscription_listing_pages_through_every_cluster_one_read_per_page() {
    let emu = start(&[]);
    // Next to no refill, so the remaining reads count the pages alone.
    let world = format!("{FLEET}\nbudgets: {{readBurst: 250, readRate: 0.001}}\n");
    emu.put_world(&world).await;
    let t = emu.arm_token().await;
    let got = pages(&emu, &t, &list_url(&emu, SUB, None, MC, "2025-10-01")).await;
    let all = items(&got);
    assert_eq!(got.len(), 3, "250 clusters at 100 a page");
    assert_eq!(all.len(), 250);
    assert_eq!(names(&all).len(), 250, "no cluster twice");
    assert!(names(&all).contains("aks1") && names(&all).contains("dev-100"));
    let reads: Vec<u64> = got.iter().map(|(_, left)| *left).collect();
    assert_eq!(
        reads,
        [reads[0], reads[0] - 1, reads[0] - 2],
        "one read per page"
    );
    assert_eq!(emu.counters().await["requests"]["aks.list"], 3);
    let prod = all.iter().find(|c| c["name"] == "prod-007").unwrap();
    assert_eq!(prod["tags"], json!({"env": "prod"}));
    assert_eq!(prod["properties"]["kubernetesVersion"], "1.32.1");
    assert_eq!(prod["type"], "Microsoft.ContainerService/ManagedClusters");
    let dev = all.iter().find(|c| c["name"] == "dev-042").unwrap();
    assert_eq!(dev["location"], "northeurope");
    // An item is what GET answers for the same cluster.
    let id = dev["id"].as_str().unwrap();
    let one = json_of(get(&emu, &t, &emu.url(&format!("{id}?api-version=2025-10-01"))).await).await;
    assert_eq!(&one, dev);
}

#[tokio::test]
async fn a_resource_group_listing_and_unknown_scopes() {
    let (emu, t) = fleet().await;
    let got = pages(
        &emu,
        &t,
        &list_url(&emu, SUB, Some("RG2"), MC, "2025-10-01"),
    )
    .await;
    assert_eq!(got.len(), 1, "exactly one full page: no nextLink");
    let all = items(&got);
    assert_eq!(all.len(), 100);
    assert!(all.iter().all(|c| c["tags"]["env"] == "dev"));
    let other = items(&pages(&emu, &t, &list_url(&emu, SUB2, None, MC, "2025-10-01")).await);
    assert_eq!(names(&other).len(), 5, "each subscription lists its own");

    let r = get(
        &emu,
        &t,
        &list_url(&emu, SUB, Some("nope"), MC, "2025-10-01"),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(json_of(r).await["error"]["code"], "ResourceGroupNotFound");
    let unknown = "00000000-0000-0000-0000-0000000000ff";
    let r = get(&emu, &t, &list_url(&emu, unknown, None, MC, "2025-10-01")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(json_of(r).await["error"]["code"], "SubscriptionNotFound");
    let bad_token = format!(
        "{}&$skiptoken=garbage",
        list_url(&emu, SUB, None, MC, "2025-10-01")
    );
    assert_eq!(get(&emu, &t, &bad_token).await.status(), 400);
}

#[tokio::test]
async fn connected_clusters_and_container_groups_list_with_their_tags() {
    let (emu, t) = fleet().await;
    let arc = "Microsoft.Kubernetes/connectedClusters";
    let all = items(&pages(&emu, &t, &list_url(&emu, SUB, None, arc, "2024-01-01")).await);
    assert_eq!(all.len(), 30);
    let one = &all[0];
    assert_eq!(one["kind"], "ProvisionedCluster");
    assert_eq!(one["tags"], json!({"site": "edge"}));
    let id = one["id"].as_str().unwrap();
    let got = json_of(get(&emu, &t, &emu.url(&format!("{id}?api-version=2024-01-01"))).await).await;
    assert_eq!(&got, one);

    let aci = "Microsoft.ContainerInstance/containerGroups";
    let got = pages(
        &emu,
        &t,
        &list_url(&emu, SUB, Some("rg1"), aci, "2025-09-01"),
    )
    .await;
    assert_eq!(got.len(), 2);
    let all = items(&got);
    assert_eq!(all.len(), 120);
    assert!(all.iter().all(|g| g["tags"]["team"] == "a"));
    assert!(
        all.iter()
            .all(|g| g["properties"].get("instanceView").is_none()),
        "list items carry no instanceView"
    );
    let id = all[0]["id"].as_str().unwrap();
    let got = json_of(get(&emu, &t, &emu.url(&format!("{id}?api-version=2025-09-01"))).await).await;
    assert_eq!(got["tags"]["team"], "a");
    assert_eq!(got["properties"]["instanceView"]["state"], "Running");
}

#[tokio::test]
async fn list_pages_draw_from_the_read_bucket_until_it_throttles() {
    let emu = start(&[]);
    let world = format!("{FLEET}\nbudgets: {{readBurst: 2, readRate: 0.001}}\n");
    emu.put_world(&world).await;
    let t = emu.arm_token().await;
    let first = get(&emu, &t, &list_url(&emu, SUB, None, MC, "2025-10-01")).await;
    assert_eq!(first.status(), 200);
    let next = json_of(first).await["nextLink"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&emu, &t, &next).await.status(), 200);
    let r = get(&emu, &t, &next).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        json_of(r).await["error"]["code"],
        "SubscriptionRequestsThrottled"
    );
}

async fn put_faults(emu: &Emulator, body: Value) {
    let r = emu
        .http
        .put(emu.url("/_emulator/faults"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn list_faults_deny_fail_or_empty_the_listing_until_lifted() {
    let (emu, t) = fleet().await;
    let url = list_url(&emu, SUB, None, MC, "2025-10-01");
    put_faults(&emu, json!({"aks.list": {"error403Rate": 1.0}})).await;
    let r = get(&emu, &t, &url).await;
    assert_eq!(r.status(), 403);
    let e = json_of(r).await;
    assert_eq!(e["error"]["code"], "AuthorizationFailed");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Microsoft.ContainerService/managedClusters/read"),
        "{msg}"
    );
    assert!(msg.contains(&format!("'/subscriptions/{SUB}'")), "{msg}");

    put_faults(&emu, json!({"aks.list": {"error500Rate": 1.0}})).await;
    assert_eq!(get(&emu, &t, &url).await.status(), 500);

    put_faults(&emu, json!({"*": {"emptyListRate": 1.0}})).await;
    let empty = json_of(get(&emu, &t, &url).await).await;
    assert_eq!(empty, json!({"value": []}), "empty and no nextLink");
    let cluster = emu.url(&format!("{}?api-version=2025-10-01", cluster_path("aks1")));
    assert_eq!(
        get(&emu, &t, &cluster).await.status(),
        200,
        "a GET is no listing"
    );

    put_faults(&emu, json!({})).await;
    assert_eq!(items(&pages(&emu, &t, &url).await).len(), 250);
}

#[tokio::test]
async fn a_cluster_added_at_run_time_is_listed_and_a_removed_one_is_not() {
    let (emu, t) = fleet().await;
    let url = list_url(&emu, SUB, Some("rg1"), MC, "2025-10-01");
    let control = emu.url(&format!(
        "/_emulator/subscriptions/{SUB}/resourceGroups/rg1/managedClusters/late-1"
    ));
    let r = emu
        .http
        .put(&control)
        .body("tags: {env: prod}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let all = items(&pages(&emu, &t, &url).await);
    let late = all.iter().find(|c| c["name"] == "late-1").expect("listed");
    assert_eq!(late["tags"]["env"], "prod");
    let gone = emu.url(&format!(
        "/_emulator/subscriptions/{SUB}/resourceGroups/rg1/managedClusters/prod-001"
    ));
    assert_eq!(emu.http.delete(&gone).send().await.unwrap().status(), 200);
    assert_eq!(emu.http.delete(&gone).send().await.unwrap().status(), 404);
    let names = names(&items(&pages(&emu, &t, &url).await));
    assert!(names.contains("late-1") && !names.contains("prod-001"));
    assert_eq!(names.len(), 150);
}

#[tokio::test]
async fn an_empty_first_page_with_a_next_link_and_a_small_page_size() {
    let emu = start(&[]);
    emu.put_world(&format!(
        "{FLEET}\nlistPaging: {{pageSize: 7, emptyFirstPage: true}}\n"
    ))
    .await;
    let t = emu.arm_token().await;
    let got = pages(&emu, &t, &list_url(&emu, SUB2, None, MC, "2025-10-01")).await;
    assert_eq!(got[0].0["value"], json!([]));
    assert!(got[0].0["nextLink"].is_string());
    assert_eq!(items(&got).len(), 5);
    let got = pages(
        &emu,
        &t,
        &list_url(&emu, SUB, Some("rg2"), MC, "2025-10-01"),
    )
    .await;
    assert_eq!(got.len(), 1 + 15, "an empty page, then 100 at 7 a page");
    assert_eq!(names(&items(&got)).len(), 100);
}

#[tokio::test]
async fn five_hundred_clusters_over_ten_subscriptions_in_a_few_lines() {
    let emu = start(&[]);
    emu.put_world(
        r#"
tenants: [{id: 00000000-0000-0000-0000-000000000001}]
principals:
  - {tenantId: 00000000-0000-0000-0000-000000000001, clientId: 11111111-1111-1111-1111-111111111111, clientSecret: emulator-secret}
subscriptionSets:
  - count: 10
    idPattern: "10000000-0000-0000-0000-{i:012}"
    resourceGroups:
      - name: fleet
        managedClusterSets: [{count: 50, namePattern: "aks-{i:02}", tags: {env: prod}}]
"#,
    )
    .await;
    let t = emu.arm_token().await;
    let mut total = 0;
    for i in 1..=10 {
        let sub = format!("10000000-0000-0000-0000-{i:012}");
        let got = pages(&emu, &t, &list_url(&emu, &sub, None, MC, "2025-10-01")).await;
        assert_eq!(
            got[0].1, 249,
            "each subscription has a read bucket of its own"
        );
        let all = items(&got);
        assert!(all.iter().all(|c| c["id"].as_str().unwrap().contains(&sub)));
        total += all.len();
    }
    assert_eq!(total, 500);
}
