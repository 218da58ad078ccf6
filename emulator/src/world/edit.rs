//! Changing one resource of the world at run time (the control API's
//! `PUT|DELETE /_emulator/subscriptions/{sub}/resourceGroups/{rg}/{kind}/{name}`): a cluster added
//! shows up in the next listing, a removed one disappears, and nothing else of the world changes.

use serde_json::Value;

use super::{ResourceGroup, World, default_location, eq};

/// The resource types a world holds, by their collection name in the world file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    ManagedClusters,
    ConnectedClusters,
    ContainerGroups,
}

impl ResourceKind {
    pub fn parse(collection: &str) -> Option<Self> {
        [
            ("managedClusters", ResourceKind::ManagedClusters),
            ("connectedClusters", ResourceKind::ConnectedClusters),
            ("containerGroups", ResourceKind::ContainerGroups),
        ]
        .into_iter()
        .find(|(name, _)| eq(name, collection))
        .map(|(_, kind)| kind)
    }
}

/// Puts `name` into the list, replacing a resource of the same name (any case); true if it is new.
fn upsert<T>(list: &mut Vec<T>, item: T, name_of: impl Fn(&T) -> &str) -> bool {
    let name = name_of(&item).to_string();
    match list.iter().position(|x| eq(name_of(x), &name)) {
        Some(i) => {
            list[i] = item;
            false
        }
        None => {
            list.push(item);
            true
        }
    }
}

fn remove<T>(list: &mut Vec<T>, name: &str, name_of: impl Fn(&T) -> &str) -> bool {
    let before = list.len();
    list.retain(|x| !eq(name_of(x), name));
    list.len() != before
}

fn typed<T: serde::de::DeserializeOwned>(fields: Value) -> Result<T, String> {
    serde_json::from_value(fields).map_err(|e| e.to_string())
}

impl World {
    /// Creates or replaces the resource `name` of `kind` in resource group `rg` (created, in the
    /// default location, when missing) from its world fields (`name` may be left out). True when
    /// the resource is new.
    pub fn put_resource(
        &mut self,
        sub: &str,
        rg: &str,
        kind: ResourceKind,
        name: &str,
        mut fields: Value,
    ) -> Result<bool, String> {
        let Some(obj) = fields.as_object_mut() else {
            return Err("the resource must be a mapping of its world fields".into());
        };
        match obj.get("name").and_then(Value::as_str) {
            Some(n) if !eq(n, name) => {
                return Err(format!("the body names '{n}', the path '{name}'"));
            }
            _ => {
                obj.insert("name".into(), Value::String(name.to_string()));
            }
        }
        let Some(subscription) = self.subscriptions.iter_mut().find(|s| eq(&s.id, sub)) else {
            return Err(format!("no subscription '{sub}' in the world"));
        };
        let groups = &mut subscription.resource_groups;
        let index = match groups.iter().position(|g| eq(&g.name, rg)) {
            Some(i) => i,
            None => {
                groups.push(ResourceGroup {
                    name: rg.to_string(),
                    location: default_location(),
                    ..Default::default()
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[index];
        let created = match kind {
            ResourceKind::ManagedClusters => {
                upsert(&mut group.managed_clusters, typed(fields)?, |c| &c.name)
            }
            ResourceKind::ConnectedClusters => {
                upsert(&mut group.connected_clusters, typed(fields)?, |c| &c.name)
            }
            ResourceKind::ContainerGroups => {
                upsert(&mut group.container_groups, typed(fields)?, |c| &c.name)
            }
        };
        self.validate()?;
        Ok(created)
    }

    /// Removes the resource; false when there was none.
    pub fn remove_resource(&mut self, sub: &str, rg: &str, kind: ResourceKind, name: &str) -> bool {
        let Some(group) = self
            .subscriptions
            .iter_mut()
            .find(|s| eq(&s.id, sub))
            .and_then(|s| s.resource_groups.iter_mut().find(|g| eq(&g.name, rg)))
        else {
            return false;
        };
        match kind {
            ResourceKind::ManagedClusters => remove(&mut group.managed_clusters, name, |c| &c.name),
            ResourceKind::ConnectedClusters => {
                remove(&mut group.connected_clusters, name, |c| &c.name)
            }
            ResourceKind::ContainerGroups => remove(&mut group.container_groups, name, |c| &c.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::DEFAULT_SUBSCRIPTION as SUB;
    use serde_json::json;

    #[test]
    fn a_resource_is_added_replaced_and_removed() {
        let mut w = World::default_world();
        let kind = ResourceKind::parse("MANAGEDCLUSTERS").unwrap();
        let fields = json!({"tags": {"env": "prod"}});
        assert_eq!(w.put_resource(SUB, "rg1", kind, "aks9", fields), Ok(true));
        assert_eq!(
            w.managed_cluster(SUB, "rg1", "aks9").unwrap().tags["env"],
            "prod"
        );
        let again = json!({"name": "AKS9", "privateCluster": true});
        assert_eq!(w.put_resource(SUB, "rg1", kind, "aks9", again), Ok(false));
        let c = w.managed_cluster(SUB, "rg1", "aks9").unwrap();
        assert!(
            c.private_cluster && c.tags.is_empty(),
            "replaced, not merged"
        );
        assert!(w.remove_resource(SUB, "rg1", kind, "Aks9"));
        assert!(!w.remove_resource(SUB, "rg1", kind, "aks9"));
    }

    #[test]
    fn a_new_group_is_made_and_bad_bodies_are_refused() {
        let mut w = World::default_world();
        let kind = ResourceKind::ContainerGroups;
        assert_eq!(
            w.put_resource(SUB, "rg-new", kind, "cg9", json!({})),
            Ok(true)
        );
        assert!(w.container_group(SUB, "rg-new", "cg9").is_some());
        assert!(
            w.put_resource(SUB, "rg1", kind, "a", json!({"name": "b"}))
                .is_err()
        );
        assert!(
            w.put_resource(SUB, "rg1", kind, "a", json!({"stat": "x"}))
                .is_err()
        );
        assert!(
            w.put_resource("other", "rg1", kind, "a", json!({}))
                .is_err()
        );
        assert!(ResourceKind::parse("virtualMachines").is_none());
    }
}
