//! Generated resources: a resource group's `managedClusterSets`, `connectedClusterSets` and
//! `containerGroupSets` declare many resources at once (a count and a name pattern), and the
//! world's `subscriptionSets` many subscriptions (a count and an id pattern), so a world of
//! hundreds of clusters over tens of subscriptions stays a few lines. Sets are expanded into plain
//! entries when the world is parsed; the world the control API shows holds those entries only.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most resources one set may generate (a typo such as `count: 1000000` should fail fast).
pub const MAX_SET_COUNT: u32 = 20_000;

/// `count` resources named by `namePattern`; every other field is a field of the resource type
/// itself (e.g. `tags`, `kubernetesVersion`), the same for each generated resource.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSet {
    pub count: u32,
    /// `{i}` is replaced by the index, `{i:03}` by the index zero-padded to 3 digits.
    pub name_pattern: String,
    /// The first index (default 1): `aks-{i:03}` with count 3 names aks-001, aks-002, aks-003.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u32>,
    #[serde(flatten)]
    pub template: Map<String, Value>,
}

impl ResourceSet {
    /// The resources of this set, each checked as a resource of type `T` would be.
    pub fn expand<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>, String> {
        let generator = Generator {
            kind,
            count: self.count,
            start: self.start,
            pattern: &self.name_pattern,
            key: "name",
        };
        generator.run(&self.template)
    }
}

/// `count` subscriptions with ids made by `idPattern` (e.g. `00000000-0000-0000-0000-{i:012}`);
/// every other field is a subscription field (`tenantId`, `resourceGroups` with their own sets…).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSet {
    pub count: u32,
    pub id_pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u32>,
    #[serde(flatten)]
    pub template: Map<String, Value>,
}

impl SubscriptionSet {
    pub fn expand<T: DeserializeOwned>(&self) -> Result<Vec<T>, String> {
        let generator = Generator {
            kind: "subscription",
            count: self.count,
            start: self.start,
            pattern: &self.id_pattern,
            key: "id",
        };
        generator.run(&self.template)
    }
}

/// Makes `count` entries from a template, setting `key` from the pattern.
struct Generator<'a> {
    kind: &'a str,
    count: u32,
    start: Option<u32>,
    pattern: &'a str,
    key: &'a str,
}

impl Generator<'_> {
    fn run<T: DeserializeOwned>(&self, template: &Map<String, Value>) -> Result<Vec<T>, String> {
        let (kind, raw, key) = (self.kind, self.pattern, self.key);
        if self.count > MAX_SET_COUNT {
            return Err(format!(
                "{kind} set '{raw}': count {} is above the limit of {MAX_SET_COUNT}",
                self.count
            ));
        }
        if template.contains_key(key) {
            return Err(format!(
                "{kind} set '{raw}': a set makes its {key}s with its pattern, not {key}"
            ));
        }
        let pattern = NamePattern::parse(raw).map_err(|e| format!("{kind} set '{raw}': {e}"))?;
        if self.count > 1 && !pattern.has_index() {
            return Err(format!(
                "{kind} set '{raw}': the pattern needs {{i}} when count is above 1"
            ));
        }
        let start = self.start.unwrap_or(1);
        (0..self.count)
            .map(|n| {
                let index = u64::from(start) + u64::from(n);
                let mut fields = template.clone();
                fields.insert(key.into(), Value::String(pattern.render(index)));
                serde_json::from_value(Value::Object(fields))
                    .map_err(|e| format!("{kind} set '{raw}': {e}"))
            })
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// The index, zero-padded to this width (0: as is).
    Index(usize),
}

/// A parsed `namePattern` or `idPattern`: literal text and `{i}` / `{i:0N}` placeholders.
#[derive(Debug, PartialEq, Eq)]
struct NamePattern(Vec<Piece>);

impl NamePattern {
    fn parse(pattern: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = pattern;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err("an unclosed '{' in the pattern".into());
            };
            let inner = &rest[open + 1..open + close];
            let width = match inner {
                "i" => 0,
                _ => inner
                    .strip_prefix("i:0")
                    .and_then(|w| w.parse::<usize>().ok())
                    .filter(|w| (1..=20).contains(w))
                    .ok_or_else(|| {
                        format!("'{{{inner}}}' in the pattern: only {{i}} and {{i:0N}} (N 1-20)")
                    })?,
            };
            pieces.push(Piece::Index(width));
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err("a '}' without '{' in the pattern".into());
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        if pieces.is_empty() {
            return Err("the pattern is empty".into());
        }
        Ok(NamePattern(pieces))
    }

    fn has_index(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Piece::Index(_)))
    }

    fn render(&self, index: u64) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Index(width) => format!("{index:0width$}"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::ManagedCluster;

    fn set(yaml: &str) -> ResourceSet {
        serde_saphyr::from_str(yaml).expect("set parses")
    }

    #[test]
    fn patterns_render_padded_indexes() {
        let p = NamePattern::parse("aks-{i:03}-eu").unwrap();
        assert_eq!(p.render(7), "aks-007-eu");
        assert_eq!(p.render(1234), "aks-1234-eu");
        assert_eq!(NamePattern::parse("c{i}").unwrap().render(42), "c42");
        for bad in ["", "a{", "a}", "{j}", "{i:3}", "{i:00}", "{i:021}"] {
            assert!(NamePattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_set_expands_into_resources_with_the_shared_fields() {
        let s =
            set("{count: 3, namePattern: 'aks-{i:02}', tags: {env: prod}, privateCluster: true}");
        let clusters: Vec<ManagedCluster> = s.expand("managedCluster").unwrap();
        let names: Vec<_> = clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["aks-01", "aks-02", "aks-03"]);
        assert!(
            clusters
                .iter()
                .all(|c| c.private_cluster && c.tags["env"] == "prod")
        );
        let from_zero = set("{count: 2, namePattern: 'c{i}', start: 0}");
        let clusters: Vec<ManagedCluster> = from_zero.expand("managedCluster").unwrap();
        assert_eq!(clusters[0].name, "c0");
    }

    #[test]
    fn a_set_refuses_what_its_resources_would() {
        let typo = set("{count: 2, namePattern: 'c{i}', privatCluster: true}");
        let err = typo.expand::<ManagedCluster>("managedCluster").unwrap_err();
        assert!(err.contains("privatCluster"), "{err}");
        let same_names = set("{count: 2, namePattern: 'c'}");
        assert!(
            same_names
                .expand::<ManagedCluster>("managedCluster")
                .is_err()
        );
        let named = set("{count: 1, namePattern: 'c', name: x}");
        assert!(named.expand::<ManagedCluster>("managedCluster").is_err());
        let huge = set("{count: 1000000, namePattern: 'c{i}'}");
        assert!(huge.expand::<ManagedCluster>("managedCluster").is_err());
    }

    #[test]
    fn subscriptions_are_generated_with_their_resource_groups() {
        let subs: SubscriptionSet = serde_saphyr::from_str(
            "{count: 2, idPattern: '00000000-0000-0000-0000-{i:012}', resourceGroups: [{name: rg}]}",
        )
        .unwrap();
        let subs: Vec<crate::world::Subscription> = subs.expand().unwrap();
        assert_eq!(subs[1].id, "00000000-0000-0000-0000-000000000002");
        assert_eq!(subs[1].resource_groups[0].name, "rg");
    }
}
