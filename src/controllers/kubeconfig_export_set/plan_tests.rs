use super::*;

const SUB: &str = "/subscriptions/00000000-0000-0000-0000-000000000001";

fn id(rg: &str, name: &str) -> String {
    format!("{SUB}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}")
}

fn absent(id: &str, listings: i32) -> AbsentCluster {
    AbsentCluster {
        resource_id: id.to_string(),
        listings,
    }
}

#[test]
fn a_cluster_goes_only_after_enough_successful_listings_without_it() {
    let (a, b) = (id("rg", "a"), id("rg", "b"));
    let held = vec![a.clone(), b.clone()];
    let listing = Listing {
        selected: vec![a.clone()],
        empty_scopes: vec![],
    };
    let first = membership(&held, Some(&listing), &[], 3);
    assert_eq!(first.hold, held, "kept while counted");
    assert_eq!(first.absent, vec![absent(&b, 1)]);
    assert!(first.prune.is_empty());

    let failed = membership(&held, None, &first.absent, 3);
    assert_eq!(failed.hold, held, "a failed listing changes nothing");
    assert_eq!(failed.absent, first.absent, "and counts nothing");

    let second = membership(&held, Some(&listing), &failed.absent, 3);
    assert_eq!(second.absent, vec![absent(&b, 2)]);
    let third = membership(&held, Some(&listing), &second.absent, 3);
    assert_eq!(third.prune, vec![b.clone()], "the third absence lets it go");
    assert_eq!(third.hold, vec![a.clone()]);
    assert!(third.absent.is_empty());
}

#[test]
fn a_cluster_seen_again_is_no_longer_counted() {
    let (a, b) = (id("rg", "a"), id("rg", "b"));
    let listing = Listing {
        selected: vec![a.clone(), b.to_uppercase()],
        empty_scopes: vec![],
    };
    let next = membership(&[a.clone(), b.clone()], Some(&listing), &[absent(&b, 2)], 3);
    assert!(next.absent.is_empty(), "IDs compare without regard to case");
    assert_eq!(next.hold.len(), 2);
}

#[test]
fn a_scope_listed_empty_does_not_count_for_the_clusters_held_in_it() {
    let (a, c) = (id("rg", "a"), id("other", "c"));
    let held = vec![a.clone(), c.clone()];
    let listing = Listing {
        selected: vec![],
        empty_scopes: vec![format!("{SUB}/resourceGroups/RG")],
    };
    let next = membership(&held, Some(&listing), &[absent(&a, 2)], 3);
    assert_eq!(next.unconfirmed, vec![a.clone()]);
    assert_eq!(
        next.absent,
        vec![absent(&c, 1), absent(&a, 2)],
        "a keeps its count, c (listed, not empty) counts; sorted by ID"
    );
    assert!(next.prune.is_empty());
    assert_eq!(next.hold, vec![c.clone(), a.clone()]);

    let whole = Listing {
        selected: vec![],
        empty_scopes: vec![SUB.to_string()],
    };
    let next = membership(&held, Some(&whole), &[], 1);
    assert!(
        next.prune.is_empty(),
        "an empty subscription lets nothing go"
    );
    assert_eq!(next.unconfirmed.len(), 2);
    // A scope that only begins like the cluster's resource group does not contain it.
    let near = Listing {
        selected: vec![],
        empty_scopes: vec![format!("{SUB}/resourceGroups/r")],
    };
    assert_eq!(
        membership(std::slice::from_ref(&a), Some(&near), &[], 1).prune,
        vec![a]
    );
}

#[test]
fn secret_names_follow_the_pattern_and_held_clusters_keep_theirs() {
    assert_eq!(
        secret_name("{name}-kubeconfig", &id("rg", "Prod_East")),
        "prod-east-kubeconfig"
    );
    assert_eq!(
        secret_name(
            "{subscription}.{resourceGroup}.{name}",
            &id("My.RG(1)", "x")
        ),
        "00000000-0000-0000-0000-000000000001.my.rg-1-.x"
    );
    assert_eq!(secret_name("-{name}-", &id("rg", "a")), "a");
    assert_eq!(secret_name(&"x".repeat(300), &id("rg", "a")).len(), 253);

    let (late, early) = (id("rg-b", "same"), id("rg-a", "same"));
    let hold = vec![early.clone(), late.clone()];
    let held: BTreeSet<String> = [late.to_ascii_lowercase()].into();
    let names = secret_names(None, &hold, &held);
    assert_eq!(
        names[&late],
        Ok("same-kubeconfig".to_string()),
        "the holder keeps it"
    );
    assert_eq!(names[&early], Err(late.clone()));
    let fresh = secret_names(None, &hold, &BTreeSet::new());
    assert_eq!(
        fresh[&early],
        Ok("same-kubeconfig".to_string()),
        "else the first by ID"
    );
    assert!(check_pattern(Some("{resourceGroup}")).is_err());
    assert!(check_pattern(None).is_ok());
}

#[test]
fn child_names_are_stable_and_fit() {
    let a = id("rg", "a");
    assert_eq!(
        child_name("fleet", &a),
        child_name("fleet", &a.to_uppercase())
    );
    assert_ne!(child_name("fleet", &a), child_name("fleet", &id("rg", "b")));
    let long = child_name(&"s".repeat(253), &a);
    assert!(long.len() <= 253 - "-kubeconfig".len(), "{}", long.len());
}
