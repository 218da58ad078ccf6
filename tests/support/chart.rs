//! Renders the RBAC templates of `charts/kubeinvoke` without Helm (it cannot be installed here), so
//! the tests apply exactly what the chart ships.
//!
//! Only this set of template actions is understood; anything else inside `{{ }}` panics, so a
//! template that drifts into Helm-only logic fails the tests instead of being rendered wrongly:
//!
//! | action | result |
//! |---|---|
//! | `.Release.Namespace`, `.Release.Name` | the release's namespace / name |
//! | `.Values.a.b` | a scalar from `values.yaml` (with overrides); a missing key panics |
//! | `include "kubeinvoke.fullname" .` | as `_helpers.tpl` defines it |
//! | `include "kubeinvoke.serviceAccountName" .` | as `_helpers.tpl` defines it |
//! | `include "kubeinvoke.labels" .` | as `_helpers.tpl` defines it (`managed-by: Helm`) |
//! | `toYaml .Values.a.b` | a map (or `{}`), one `key: value` line per entry |
//! | `… \| quote`, `… \| nindent N` | Helm's `quote` and `nindent` |
//! | `if .Values.a.b` … `end` | Helm's truthiness (false, 0, "", null, empty map/list are false) |
//!
//! `{{-` and `-}}` trim the whitespace before / after the action, as in Go templates.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The chart: its `Chart.yaml` facts and the values used for rendering.
#[derive(Debug, Clone)]
pub struct Chart {
    pub dir: PathBuf,
    pub name: String,
    pub version: String,
    pub app_version: String,
    pub values: Value,
}

/// What Helm calls `.Release`.
#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
}

impl Chart {
    /// `charts/kubeinvoke` with its default `values.yaml`.
    pub fn load() -> Chart {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/kubeinvoke");
        let meta = read_yaml(&dir.join("Chart.yaml"));
        let field = |k: &str| {
            meta[k]
                .as_str()
                .unwrap_or_else(|| panic!("Chart.yaml has no string {k}"))
                .to_string()
        };
        Chart {
            name: field("name"),
            version: field("version"),
            app_version: field("appVersion"),
            values: read_yaml(&dir.join("values.yaml")),
            dir,
        }
    }

    /// Overrides one value, like `helm --set a.b=value`.
    pub fn set(&mut self, path: &str, value: Value) {
        let mut node = &mut self.values;
        for key in path.split('.') {
            node = &mut node[key];
        }
        *node = value;
    }

    /// Renders `templates/<file>` and parses it: `None` when it renders to nothing (a false `if`).
    pub fn render_object(&self, file: &str, release: &Release) -> Option<Value> {
        let text = self.render(file, release);
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return None;
        }
        let value: Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{file} rendered to invalid YAML: {e}\n{text}"));
        Some(value)
    }

    /// Renders `templates/<file>` to text.
    pub fn render(&self, file: &str, release: &Release) -> String {
        let path = self.dir.join("templates").join(file);
        let template = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        render_text(
            &template,
            &Scope {
                chart: self,
                release,
            },
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    fn value(&self, path: &str) -> Result<&Value, String> {
        let mut node = &self.values;
        for key in path.split('.') {
            node = node
                .get(key)
                .ok_or_else(|| format!("values.yaml has no {path}"))?;
        }
        Ok(node)
    }

    /// `kubeinvoke.name`: nameOverride or the chart name.
    fn short_name(&self) -> String {
        let name = match self.values["nameOverride"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => self.name.clone(),
        };
        trunc63(&name)
    }

    /// `kubeinvoke.fullname`.
    pub fn fullname(&self, release: &Release) -> String {
        if let Some(full) = self.values["fullnameOverride"].as_str()
            && !full.is_empty()
        {
            return trunc63(full);
        }
        let name = match self.values["nameOverride"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => self.name.clone(),
        };
        if release.name.contains(&name) {
            trunc63(&release.name)
        } else {
            trunc63(&format!("{}-{name}", release.name))
        }
    }

    /// `kubeinvoke.serviceAccountName`.
    pub fn service_account_name(&self, release: &Release) -> String {
        let name = self.values["serviceAccount"]["name"]
            .as_str()
            .filter(|n| !n.is_empty());
        match (truthy(&self.values["serviceAccount"]["create"]), name) {
            (_, Some(name)) => name.to_string(),
            (true, None) => self.fullname(release),
            (false, None) => "default".to_string(),
        }
    }

    /// `kubeinvoke.labels`.
    fn labels(&self, release: &Release) -> String {
        format!(
            "helm.sh/chart: {}\napp.kubernetes.io/name: {}\napp.kubernetes.io/instance: {}\n\
             app.kubernetes.io/version: {}\napp.kubernetes.io/managed-by: Helm",
            trunc63(&format!("{}-{}", self.name, self.version).replace('+', "_")),
            self.short_name(),
            release.name,
            quote(&self.app_version),
        )
    }
}

struct Scope<'a> {
    chart: &'a Chart,
    release: &'a Release,
}

fn read_yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn trunc63(s: &str) -> String {
    s.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Helm's (Go template's) truthiness.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn scalar(path: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!(".Values.{path} is not a scalar: {other}")),
    }
}

/// A map as block YAML, values JSON-quoted (valid YAML); `{}` when empty.
fn to_yaml(path: &str, v: &Value) -> Result<String, String> {
    let map = v
        .as_object()
        .ok_or_else(|| format!("toYaml .Values.{path}: only maps are supported, got {v}"))?;
    if map.is_empty() {
        return Ok("{}".to_string());
    }
    Ok(map
        .iter()
        .map(|(k, v)| format!("{}: {v}", quote(k)))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn nindent(n: usize, s: &str) -> String {
    let pad = " ".repeat(n);
    let body = s
        .lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n");
    format!("\n{body}")
}

fn render_text(template: &str, scope: &Scope<'_>) -> Result<String, String> {
    let mut out = String::new();
    // One entry per open `if`: whether its body is rendered.
    let mut active: Vec<bool> = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while !rest.is_empty() {
        let (text, action) = match rest.find("{{") {
            Some(i) => (&rest[..i], Some(&rest[i + 2..])),
            None => (rest, None),
        };
        let mut text = if trim_next { text.trim_start() } else { text };
        let Some(after_open) = action else {
            if active.iter().all(|a| *a) {
                out.push_str(text);
            }
            break;
        };
        let close = after_open
            .find("}}")
            .ok_or_else(|| "an action is not closed by }}".to_string())?;
        let raw = &after_open[..close];
        rest = &after_open[close + 2..];
        let trim_before = raw.starts_with('-');
        trim_next = raw.ends_with('-');
        let inner = raw.strip_prefix('-').unwrap_or(raw);
        let expr = inner.strip_suffix('-').unwrap_or(inner).trim();
        if trim_before {
            text = text.trim_end();
        }
        let rendering = active.iter().all(|a| *a);
        if rendering {
            out.push_str(text);
        }
        if let Some(cond) = expr.strip_prefix("if ") {
            let value = value_path(cond.trim())?;
            active.push(rendering && truthy(scope.chart.value(value)?));
        } else if expr == "end" {
            active
                .pop()
                .ok_or_else(|| "`end` without `if`".to_string())?;
        } else if rendering {
            out.push_str(&eval(expr, scope)?);
        } else {
            eval(expr, scope)?; // still refuse unknown actions in skipped branches
        }
    }
    if !active.is_empty() {
        return Err("an `if` is not closed by `end`".to_string());
    }
    Ok(out)
}

fn value_path(expr: &str) -> Result<&str, String> {
    expr.strip_prefix(".Values.")
        .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '.'))
        .ok_or_else(|| unsupported(expr))
}

fn unsupported(expr: &str) -> String {
    format!(
        "`{{{{ {expr} }}}}` is outside what tests/support/chart.rs renders (see its header); \
         keep RBAC templates to plain substitutions"
    )
}

fn eval(expr: &str, scope: &Scope<'_>) -> Result<String, String> {
    let mut stages = expr.split('|').map(str::trim);
    let head = stages.next().unwrap_or_default();
    let mut value = match head {
        ".Release.Namespace" => scope.release.namespace.clone(),
        ".Release.Name" => scope.release.name.clone(),
        r#"include "kubeinvoke.fullname" ."# => scope.chart.fullname(scope.release),
        r#"include "kubeinvoke.serviceAccountName" ."# => {
            scope.chart.service_account_name(scope.release)
        }
        r#"include "kubeinvoke.labels" ."# => scope.chart.labels(scope.release),
        _ => {
            if let Some(arg) = head.strip_prefix("toYaml ") {
                let path = value_path(arg.trim())?;
                to_yaml(path, scope.chart.value(path)?)?
            } else {
                let path = value_path(head)?;
                scalar(path, scope.chart.value(path)?)?
            }
        }
    };
    for stage in stages {
        value = match stage.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["quote"] => quote(&value),
            ["nindent", n] => nindent(n.parse().map_err(|_| unsupported(expr))?, &value),
            _ => return Err(unsupported(expr)),
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> Chart {
        let mut chart = Chart::load();
        chart.values = serde_json::json!({
            "nameOverride": "", "fullnameOverride": "",
            "serviceAccount": {"create": true, "name": "", "annotations": {"a/b": "c"}},
            "flag": false, "lease": "kubeinvoke"
        });
        chart
    }

    fn release() -> Release {
        Release {
            name: "r1".into(),
            namespace: "ops".into(),
        }
    }

    fn render(t: &str) -> Result<String, String> {
        render_text(
            t,
            &Scope {
                chart: &chart(),
                release: &release(),
            },
        )
    }

    #[test]
    fn substitutes_trims_and_skips_false_branches() {
        let t = "{{- if .Values.serviceAccount.create }}\nname: {{ include \"kubeinvoke.serviceAccountName\" . }}\nns: {{ .Release.Namespace }}\n{{- if .Values.flag }}\nhidden: yes\n{{- end }}\nlease: [{{ .Values.lease | quote }}]\nannotations:\n  {{- toYaml .Values.serviceAccount.annotations | nindent 2 }}\n{{- end }}\n";
        assert_eq!(
            render(t).unwrap(),
            "\nname: r1-kubeinvoke\nns: ops\nlease: [\"kubeinvoke\"]\nannotations:\n  \"a/b\": \"c\"\n"
        );
    }

    #[test]
    fn refuses_anything_else() {
        for t in [
            "{{ .Values.lease | default \"x\" }}",
            "{{ with .Values.lease }}{{ end }}",
            "{{ printf \"%s\" .Release.Name }}",
            "{{- if .Values.flag }}{{ tpl .Values.lease . }}{{ end }}",
            "{{ .Values.missing }}",
            "{{ if .Values.flag }}",
        ] {
            assert!(render(t).is_err(), "{t} should be refused");
        }
    }
}
