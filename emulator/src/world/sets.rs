//! Generated resources: a resource group's `managedClusterSets`, `connectedClusterSets` and
//! `containerGroupSets` declare many resources at once (a count and a name pattern), so a world of
//! hundreds of clusters stays a few lines. Sets are expanded into plain resources when the world
//! is parsed; the world the control API shows holds the expanded resources only.

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
        if self.count > MAX_SET_COUNT {
            return Err(format!(
                "{kind} set '{}': count {} is above the limit of {MAX_SET_COUNT}",
                self.name_pattern, self.count
            ));
        }
        if self.template.contains_key("name") {
            return Err(format!(
                "{kind} set '{}': a set names its resources with namePattern, not name",
                self.name_pattern
            ));
        }
        let pattern = NamePattern::parse(&self.name_pattern)
            .map_err(|e| format!("{kind} set '{}': {e}", self.name_pattern))?;
        if self.count > 1 && !pattern.has_index() {
            return Err(format!(
                "{kind} set '{}': namePattern needs {{i}} when count is above 1",
                self.name_pattern
            ));
        }
        let start = self.start.unwrap_or(1);
        (0..self.count)
            .map(|n| {
                let index = u64::from(start) + u64::from(n);
                let mut fields = self.template.clone();
                fields.insert("name".into(), Value::String(pattern.render(index)));
                serde_json::from_value(Value::Object(fields))
                    .map_err(|e| format!("{kind} set '{}': {e}", self.name_pattern))
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

/// A parsed `namePattern`: literal text and `{i}` / `{i:0N}` placeholders.
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
                return Err("an unclosed '{' in namePattern".into());
            };
            let inner = &rest[open + 1..open + close];
            let width = match inner {
                "i" => 0,
                _ => inner
                    .strip_prefix("i:0")
                    .and_then(|w| w.parse::<usize>().ok())
                    .filter(|w| (1..=9).contains(w))
                    .ok_or_else(|| {
                        format!("'{{{inner}}}' in namePattern: only {{i}} and {{i:0N}} (N 1-9)")
                    })?,
            };
            pieces.push(Piece::Index(width));
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err("a '}' without '{' in namePattern".into());
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        if pieces.is_empty() {
            return Err("namePattern is empty".into());
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
        for bad in ["", "a{", "a}", "{j}", "{i:3}", "{i:00}", "{i:010}"] {
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
}
