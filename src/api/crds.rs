//! The CustomResourceDefinitions as installed: the derived schemas plus the rules a derive can't
//! express (exactly-one-of constraints, the status default that makes kstatus read a new object as
//! in progress).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::{KubeconfigExport, KubeconfigExportSet, RemoteCommand, RemoteCommandSet};

/// Every CRD of kubeinvoke, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        remote_command(),
        kubeconfig_export(),
        remote_command_set(),
        kubeconfig_export_set(),
    ]
    .into_iter()
    .map(kept)
    .collect()
}

/// Deleting a CRD deletes every object of its kind, and with them the Secrets they own (exported
/// kubeconfigs, Argo CD clusters): Helm leaves these CRDs in place when the release that installed
/// them is uninstalled, Argo CD when its Application is deleted or stops rendering them.
fn kept(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let annotations = crd
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert("helm.sh/resource-policy".into(), "keep".into());
    annotations.insert(
        "argocd.argoproj.io/sync-options".into(),
        "Prune=false,Delete=false".into(),
    );
    crd
}

/// The `RemoteCommand` CRD.
pub fn remote_command() -> CustomResourceDefinition {
    let mut crd = RemoteCommand::crd();
    edit_schema(&mut crd, |schema| {
        default_status(schema);
        object_types(schema);
        exactly_one_of(schema, &["spec", "target"], &["aks", "containerInstance"]);
        exactly_one_of(
            schema,
            &["spec", "files", "[]"],
            &["configMapRef", "secretRef"],
        );
    });
    crd
}

/// The `RemoteCommandSet` CRD.
pub fn remote_command_set() -> CustomResourceDefinition {
    let mut crd = RemoteCommandSet::crd();
    edit_schema(&mut crd, |schema| {
        default_status(schema);
        object_types(schema);
    });
    crd
}

/// The `KubeconfigExportSet` CRD.
pub fn kubeconfig_export_set() -> CustomResourceDefinition {
    let mut crd = KubeconfigExportSet::crd();
    edit_schema(&mut crd, |schema| {
        default_status(schema);
        object_types(schema);
    });
    crd
}

/// The `KubeconfigExport` CRD.
pub fn kubeconfig_export() -> CustomResourceDefinition {
    let mut crd = KubeconfigExport::crd();
    edit_schema(&mut crd, |schema| {
        default_status(schema);
        object_types(schema);
        exactly_one_of(schema, &["spec", "source"], &["hybrid", "aks"]);
    });
    crd
}

/// All CRDs as one multi-document YAML stream, as committed under `crds/`.
pub fn to_yaml() -> String {
    all()
        .iter()
        .map(|crd| serde_saphyr::to_string(crd).expect("a CRD always serializes to YAML"))
        .map(|doc| format!("---\n{doc}"))
        .collect()
}

fn edit_schema(crd: &mut CustomResourceDefinition, edit: impl Fn(&mut Value)) {
    for version in &mut crd.spec.versions {
        let Some(validation) = version.schema.as_mut() else {
            continue;
        };
        let Some(props) = validation.open_api_v3_schema.take() else {
            continue;
        };
        let mut schema = serde_json::to_value(props).expect("schema serializes");
        edit(&mut schema);
        let props: JSONSchemaProps = serde_json::from_value(schema).expect("edited schema parses");
        validation.open_api_v3_schema = Some(props);
    }
}

/// A freshly created object reads back with `status.observedGeneration: 0` (generation is 1), so
/// kstatus sees it as in progress before any controller has written status.
fn default_status(schema: &mut Value) {
    let status = &mut schema["properties"]["status"];
    assert!(status.is_object(), "the CRD has a status property");
    status["default"] = json!({ "observedGeneration": 0 });
}

/// Optional structs come out of the derive as `nullable` with properties but no `type`. Say
/// `object`, and drop `nullable` (we never send null for them): the API server leaves nullable
/// fields out of its OpenAPI v2 document, and `kubectl explain` would show them as `<>`.
fn object_types(node: &mut Value) {
    let Some(map) = node.as_object_mut() else {
        return;
    };
    if map.contains_key("properties") {
        map.insert("type".into(), json!("object"));
        map.remove("nullable");
    }
    for key in ["properties", "items"] {
        match map.get_mut(key) {
            Some(Value::Object(children)) if key == "properties" => {
                children.values_mut().for_each(object_types)
            }
            Some(child) if key == "items" => object_types(child),
            _ => {}
        }
    }
}

/// Requires exactly one of `fields` in the object at `path` (`[]` steps into array items).
fn exactly_one_of(schema: &mut Value, path: &[&str], fields: &[&str]) {
    let mut node = schema;
    for step in path {
        node = if *step == "[]" {
            &mut node["items"]
        } else {
            &mut node["properties"][*step]
        };
    }
    assert!(node.is_object(), "schema path {path:?} exists");
    for field in fields {
        assert!(
            node["properties"][*field].is_object(),
            "{path:?} has a property {field}"
        );
    }
    let branches: Vec<Value> = fields.iter().map(|f| json!({ "required": [f] })).collect();
    node["oneOf"] = Value::Array(branches);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(crd: &CustomResourceDefinition) -> Value {
        serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap()
    }

    /// Paths of properties that have no description (what `kubectl explain` would show empty).
    fn undescribed(node: &Value, path: String, out: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let child_path = format!("{path}.{name}");
                let described = child
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.is_empty());
                if !described
                    && child_path != ".metadata"
                    && child_path != ".apiVersion"
                    && child_path != ".kind"
                {
                    out.push(child_path.clone());
                }
                undescribed(child, child_path, out);
            }
        }
        if let Some(items) = node.get("items") {
            undescribed(items, format!("{path}[]"), out);
        }
    }

    #[test]
    fn every_field_has_a_description() {
        for crd in all() {
            let mut missing = Vec::new();
            undescribed(&schema_of(&crd), String::new(), &mut missing);
            assert!(
                missing.is_empty(),
                "{}: fields without description: {missing:?}",
                crd.spec.names.kind
            );
        }
    }

    #[test]
    fn committed_crds_are_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/kubeinvoke.io.yaml");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == to_yaml(),
            "crds/kubeinvoke.io.yaml is stale or missing: run `make crds` and commit it"
        );
    }

    #[test]
    fn names_and_columns() {
        let rc = remote_command();
        assert_eq!(rc.spec.names.short_names, Some(vec!["rcmd".to_string()]));
        assert_eq!(
            rc.spec.names.categories,
            Some(vec!["kubeinvoke".to_string()])
        );
        let cols: Vec<_> = rc.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, ["Target", "Phase", "Exit", "Reason", "Age"]);
        let kcx = kubeconfig_export();
        assert_eq!(kcx.spec.names.short_names, Some(vec!["kcx".to_string()]));
        let cols: Vec<_> = kcx.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, ["Secret", "Ready", "Expires", "Reason", "Age"]);
        // A `date` column shows a future time as `<invalid>`; only past times (Age) may use it.
        let expires = kcx.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .find(|c| c.name == "Expires")
            .unwrap();
        assert_eq!(expires.type_, "string");
    }

    #[test]
    fn one_of_constraints_and_status_default() {
        let s = schema_of(&remote_command());
        assert_eq!(
            s["properties"]["status"]["default"],
            json!({"observedGeneration": 0})
        );
        assert_eq!(
            s["properties"]["spec"]["properties"]["target"]["oneOf"][1],
            json!({"required": ["containerInstance"]})
        );
        let s = schema_of(&kubeconfig_export());
        assert_eq!(
            s["properties"]["spec"]["properties"]["source"]["oneOf"][0],
            json!({"required": ["hybrid"]})
        );
    }
}
