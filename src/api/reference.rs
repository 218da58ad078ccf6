//! The API reference (`docs/api.md`), written from the installed CRD schemas so that it says what
//! the API server enforces and `kubectl explain` shows; the doc comments in `api/` are its text.

use std::fmt::Write as _;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use super::crds;

/// Patterns longer than this are listed once at the end instead of inside the tables.
const INLINE_PATTERN_MAX: usize = 40;

/// The whole reference, as committed in `docs/api.md`.
pub fn to_markdown() -> String {
    let crds = crds::all();
    let mut patterns = Patterns::default();
    let mut out = String::from(PREAMBLE);
    let _ = writeln!(
        out,
        "\nThe kinds kubeinvoke serves, in the API group `{}`, version `{}`:\n",
        crds[0].spec.group, crds[0].spec.versions[0].name
    );
    out.push_str("| Kind | Short names | Plural | Scope | Categories |\n|---|---|---|---|---|\n");
    for crd in &crds {
        let names = &crd.spec.names;
        let list = |items: &Option<Vec<String>>| {
            let items: Vec<String> = items.iter().flatten().map(|s| code(s)).collect();
            items.join(", ")
        };
        let _ = writeln!(
            out,
            "| [{kind}](#{anchor}) | {short} | {plural} | {scope} | {categories} |",
            kind = names.kind,
            anchor = names.kind.to_lowercase(),
            short = list(&names.short_names),
            plural = code(&names.plural),
            scope = crd.spec.scope,
            categories = list(&names.categories),
        );
    }
    out.push_str(READING);
    for crd in &crds {
        kind_section(&mut out, crd, &mut patterns);
    }
    patterns.section(&mut out);
    out
}

const PREAMBLE: &str = "\
# API reference

<!-- Generated from the CRD schemas by `make crds` (src/api/reference.rs). Edit the doc comments
     in src/api/, not this file; a unit test fails while it is stale. -->
";

const READING: &str = "
`kubectl get <category>` lists the objects of every kind in that category.

How to read the field tables:

- **Field** is the path from the object's root; `[]` stands for every element of an array.
- **Type** is the OpenAPI type the API server checks: `[]T` is an array of `T`,
  `map[string]T` an object with keys of your choosing; a format (`int32`, `date-time`) follows in
  parentheses.
- **Required** applies within the parent: a required field of an optional object must be set
  when that object is. `one of` marks fields of which exactly one must be set.
- **Default** is filled in by the API server when the field is left out.
- **Constraints** are checked by the API server on create and update; a request that breaks one
  is refused with a message naming the field.
";

fn kind_section(out: &mut String, crd: &CustomResourceDefinition, patterns: &mut Patterns) {
    let names = &crd.spec.names;
    let version = &crd.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).expect("schema serializes"))
        .expect("every CRD has a schema");
    patterns.kind = names.kind.clone();
    let _ = writeln!(out, "\n## {}\n", names.kind);
    let _ = writeln!(out, "{}\n", prose(description(&schema)));
    let short = names.short_names.iter().flatten().next();
    let _ = writeln!(
        out,
        "`apiVersion: {group}/{version}`, `kind: {kind}`; `kubectl get {name}` shows:\n",
        group = crd.spec.group,
        version = version.name,
        kind = names.kind,
        name = short.unwrap_or(&names.plural),
    );
    out.push_str("| Column | Source | Shows |\n|---|---|---|\n");
    for column in version.additional_printer_columns.iter().flatten() {
        let mut shows = column.description.clone().unwrap_or_default();
        if column.priority.unwrap_or(0) > 0 {
            shows.push_str(" (only with `-o wide`)");
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            column.name.to_uppercase(),
            code(&column.json_path),
            prose(&shows)
        );
    }
    for part in ["spec", "status"] {
        let node = &schema["properties"][part];
        if !node.is_object() {
            continue;
        }
        let _ = writeln!(out, "\n### {}.{part}\n", names.kind);
        let _ = writeln!(out, "{}\n", prose(description(node)));
        let mut rows = Vec::new();
        fields(node, part, &mut rows, patterns);
        out.push_str("| Field | Type | Required | Default | Constraints | Description |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for row in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                code(&row.path),
                row.type_,
                row.required,
                row.default,
                row.constraints.join("; "),
                row.description
            );
        }
    }
}

/// One table row; every cell already Markdown.
struct Row {
    path: String,
    type_: String,
    required: &'static str,
    default: String,
    constraints: Vec<String>,
    description: String,
}

/// Rows for the properties of `node` (an object schema at `path`), each followed by its own.
fn fields(node: &Value, path: &str, rows: &mut Vec<Row>, patterns: &mut Patterns) {
    let Some(properties) = node["properties"].as_object() else {
        return;
    };
    let required = strings(&node["required"]);
    let one_of = one_of(node);
    for (name, child) in properties {
        let child_path = format!("{path}.{name}");
        let condition = is_condition_list(child);
        let mut description = prose(description(child));
        if condition {
            description.push_str(
                " Each entry is a Kubernetes `Condition` (`type`, `status`, `reason`, `message`, \
                 `lastTransitionTime`, `observedGeneration`).",
            );
        }
        rows.push(Row {
            path: child_path.clone(),
            type_: if condition {
                code("[]Condition")
            } else {
                code(&type_of(child))
            },
            required: if required.contains(name) {
                "yes"
            } else if one_of.contains(name) {
                "one of"
            } else {
                "no"
            },
            default: child
                .get("default")
                .map(|d| match d {
                    Value::String(s) => code(s),
                    other => code(&other.to_string()),
                })
                .unwrap_or_default(),
            constraints: constraints(child, &child_path, patterns),
            description,
        });
        if condition {
            continue;
        }
        // Into objects and into arrays of objects (`[]` in the path).
        let mut inner = child;
        let mut inner_path = child_path;
        while inner["type"] == "array" {
            inner = &inner["items"];
            inner_path.push_str("[]");
        }
        fields(inner, &inner_path, rows, patterns);
    }
}

fn type_of(node: &Value) -> String {
    let base = match node["type"].as_str() {
        Some("array") => return format!("[]{}", type_of(&node["items"])),
        Some("object") if node.get("additionalProperties").is_some() => {
            return format!("map[string]{}", type_of(&node["additionalProperties"]));
        }
        Some(t) => t,
        None => "any",
    };
    match node["format"].as_str() {
        Some(format) => format!("{base} ({format})"),
        None => base.to_string(),
    }
}

fn constraints(node: &Value, path: &str, patterns: &mut Patterns) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(values) = node["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| code(v.as_str().map_or(v.to_string(), str::to_string).as_str()))
            .collect();
        out.push(format!("one of {}", values.join(", ")));
    }
    let codes = |fields: Vec<String>| fields.iter().map(|f| code(f)).collect::<Vec<_>>();
    let fields = codes(one_of(node));
    if !fields.is_empty() {
        out.push(format!("exactly one of {}", fields.join(", ")));
    }
    let fields = codes(one_of(&node["items"]));
    if !fields.is_empty() {
        out.push(format!("each item: exactly one of {}", fields.join(", ")));
    }
    if let Some(range) = range(node, "minLength", "maxLength", "characters") {
        out.push(range);
    }
    if let Some(range) = range(node, "minimum", "maximum", "") {
        out.push(range);
    }
    if let Some(range) = range(node, "minItems", "maxItems", "items") {
        out.push(range);
    }
    if let Some(range) = range(node, "minProperties", "maxProperties", "entries") {
        out.push(range);
    }
    if let Some(range) = range(
        &node["additionalProperties"],
        "minLength",
        "maxLength",
        "characters",
    ) {
        out.push(format!("each value: {range}"));
    }
    if let Some(pattern) = node["pattern"].as_str() {
        if pattern.chars().count() <= INLINE_PATTERN_MAX {
            out.push(format!("pattern {}", code(pattern)));
        } else {
            let label = patterns.label(pattern, path);
            out.push(format!("pattern [{label}](#patterns)"));
        }
    }
    out
}

/// The fields of which an object needs exactly one (`oneOf` of `required` branches).
fn one_of(node: &Value) -> Vec<String> {
    node["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|branch| strings(&branch["required"]))
        .collect()
}

/// `1–253 characters`, `at most 32 items`, `at least 0`, ...
fn range(node: &Value, min: &str, max: &str, unit: &str) -> Option<String> {
    let number = |key: &str| node[key].as_f64().map(|n| format!("{n}"));
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    match (number(min), number(max)) {
        (Some(lo), Some(hi)) => Some(format!("{lo}–{hi}{unit}")),
        (Some(lo), None) => Some(format!("at least {lo}{unit}")),
        (None, Some(hi)) => Some(format!("at most {hi}{unit}")),
        (None, None) => None,
    }
}

/// The standard `metav1.Condition` list: described by Kubernetes, not repeated here.
fn is_condition_list(node: &Value) -> bool {
    let Some(properties) = node["items"]["properties"].as_object() else {
        return false;
    };
    let mut names: Vec<&str> = properties.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
        == [
            "lastTransitionTime",
            "message",
            "observedGeneration",
            "reason",
            "status",
            "type",
        ]
}

/// Long patterns, numbered in order of first use, with the fields (kind, path) that use them.
#[derive(Default)]
struct Patterns {
    kind: String,
    list: Vec<(String, Vec<(String, String)>)>,
}

impl Patterns {
    fn label(&mut self, pattern: &str, path: &str) -> String {
        let index = match self.list.iter().position(|(p, _)| p == pattern) {
            Some(i) => i,
            None => {
                self.list.push((pattern.to_string(), Vec::new()));
                self.list.len() - 1
            }
        };
        let user = (self.kind.clone(), path.to_string());
        self.list[index].1.push(user);
        format!("P{}", index + 1)
    }

    fn section(&self, out: &mut String) {
        if self.list.is_empty() {
            return;
        }
        out.push_str("\n## Patterns\n\nRegular expressions too long for the tables above.\n");
        for (i, (pattern, users)) in self.list.iter().enumerate() {
            let mut by_kind: Vec<String> = Vec::new();
            let mut kinds: Vec<&str> = users.iter().map(|(k, _)| k.as_str()).collect();
            kinds.dedup();
            for kind in kinds {
                let paths: Vec<String> = users
                    .iter()
                    .filter(|(k, _)| k == kind)
                    .map(|(_, p)| code(p))
                    .collect();
                by_kind.push(format!("{kind} {}", paths.join(", ")));
            }
            let _ = write!(
                out,
                "\n**P{}**, used by {}:\n\n```\n{pattern}\n```\n",
                i + 1,
                by_kind.join("; ")
            );
        }
    }
}

fn description(node: &Value) -> &str {
    node["description"].as_str().unwrap_or_default()
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// `text` as one code span that also survives inside a table cell.
fn code(text: &str) -> String {
    let ticks = if text.contains('`') { "``" } else { "`" };
    format!("{ticks}{}{ticks}", text.replace('|', "\\|"))
}

/// A doc comment as one line of Markdown for a table cell: wrapped lines joined, paragraphs
/// kept apart, `|` escaped, and `<` outside code spans shown as text rather than taken for HTML.
fn prose(text: &str) -> String {
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    let joined = paragraphs.join("<br><br>");
    let mut out = String::with_capacity(joined.len());
    for (i, part) in joined.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        let part = part.replace('|', "\\|");
        if i % 2 == 0 {
            // Outside code spans; the `<br>` we put there ourselves stays HTML.
            out.push_str(
                &part
                    .replace('<', "&lt;")
                    .replace("&lt;br>", "<br>")
                    .replace('>', "&gt;")
                    .replace("<br&gt;", "<br>"),
            );
        } else {
            out.push_str(&part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md");

    #[test]
    fn committed_api_reference_is_current() {
        let generated = to_markdown();
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/api.md is stale or missing: run `make crds` and commit it"
        );
    }

    #[test]
    fn every_schema_field_has_a_row() {
        let doc = to_markdown();
        for path in [
            "spec.target.containerInstance.shell",
            "spec.files[].configMapRef.items[].path",
            "spec.output.tailBytes",
            "status.exitCode",
            "spec.source.hybrid.apiVersion",
            "spec.secret.labels",
            "status.expiresAt",
        ] {
            assert!(doc.contains(&format!("| `{path}` |")), "no row for {path}");
        }
        // The Conditions' own fields are Kubernetes', not ours.
        assert!(!doc.contains("status.conditions[].type"));
    }

    #[test]
    fn rows_carry_type_requirement_default_and_constraints() {
        let doc = to_markdown();
        let row = |path: &str| {
            doc.lines()
                .find(|l| l.starts_with(&format!("| `{path}` |")))
                .unwrap_or_else(|| panic!("no row for {path}"))
                .to_string()
        };
        let timeout = row("spec.timeoutSeconds");
        assert!(
            timeout.starts_with(
                "| `spec.timeoutSeconds` | `integer (int64)` | no | `600` | 1–86400 | Deadline"
            ),
            "{timeout}"
        );
        let policy = row("spec.dispatchPolicy");
        assert!(
            policy.contains("| `AtMostOnce` | one of `AtMostOnce`, `AtLeastOnce` |"),
            "{policy}"
        );
        let target = row("spec.target");
        assert!(
            target.contains("| yes |")
                && target.contains("exactly one of `aks`, `containerInstance`"),
            "{target}"
        );
        assert!(row("spec.target.aks").contains("| one of |"));
        let id = row("spec.target.aks.resourceId");
        assert!(id.contains("| yes |") && id.contains("pattern [P"), "{id}");
        let path = row("spec.files[].configMapRef.items[].path");
        assert!(path.contains("1–255 characters"), "{path}");
        assert!(
            row("spec.files").contains("`[]object`")
                && row("spec.files").contains("at most 8 items")
        );
        assert!(row("spec.secret.labels").contains("`map[string]string`"));
        assert!(row("status.expiresAt").contains("`string (date-time)`"));
    }

    #[test]
    fn prose_fits_in_a_table_cell() {
        assert_eq!(
            prose("Name of the\nSecret `a|b` or <name>-output; a|b.\n\nSecond."),
            "Name of the Secret `a\\|b` or &lt;name&gt;-output; a\\|b.<br><br>Second."
        );
        assert_eq!(code("^(a|b)$"), "`^(a\\|b)$`");
    }
}
