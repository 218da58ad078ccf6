//! The chart as users meet it: every value documented and described by the schema (and nothing
//! else accepted), the objects a production install expects, and no foot-gun left in the values.
//! Rendered by real Helm; the chart on the node is in hostile*.rs, node.rs and rbac.rs.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;

use support::helm::{Chart, Release, helm};

fn release() -> Release {
    Release {
        name: "ops".into(),
        namespace: "ops".into(),
    }
}

fn schema() -> Value {
    let path = Chart::load().dir.join("values.schema.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("values.schema.json"))
        .expect("values.schema.json is JSON")
}

/// Dotted paths of `values`, descending only where the schema describes an object's properties
/// (maps such as `podLabels` and Kubernetes objects such as `resources` are leaves).
fn paths(values: &Value, schema: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    for (key, sub) in properties {
        let path = format!("{prefix}{key}");
        out.insert(path.clone());
        paths(&values[key], sub, &format!("{path}."), out);
    }
    if let Some(map) = values.as_object() {
        for key in map.keys() {
            out.insert(format!("{prefix}{key}"));
        }
    }
}

/// values.yaml, values.schema.json and the chart README's table name the same values: a value
/// added to one and not the others fails here.
#[test]
fn every_value_is_in_the_schema_and_the_readme() {
    let chart = Chart::load();
    let schema = schema();
    let mut all = BTreeSet::new();
    paths(&chart.values, &schema, "", &mut all);
    let mut described = BTreeSet::new();
    paths(&Value::Null, &schema, "", &mut described);
    let undescribed: Vec<_> = all.difference(&described).collect();
    assert!(
        undescribed.is_empty(),
        "values.yaml has values the schema does not describe: {undescribed:?}"
    );
    let top_level: BTreeSet<String> = chart.values.as_object().unwrap().keys().cloned().collect();
    let schema_top: BTreeSet<String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        top_level, schema_top,
        "values.yaml and values.schema.json differ"
    );
    let readme = std::fs::read_to_string(chart.dir.join("README.md")).expect("chart README");
    let table: String = readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect::<Vec<_>>()
        .join("\n");
    let missing: Vec<_> = top_level
        .iter()
        .filter(|key| !table.contains(&format!("`{key}`")) && !table.contains(&format!("`{key}.")))
        .collect();
    assert!(
        missing.is_empty(),
        "values missing from the chart README's table: {missing:?}"
    );
}

/// A typo or a wrong type is refused by `helm template` (and so by install and upgrade), saying
/// which value.
#[test]
fn a_typo_or_a_wrong_type_in_the_values_is_refused() {
    let chart = Chart::load();
    for (set, said) in [
        ("wachNamespaces={a}", "wachNamespaces"),
        ("operatorIdentity=workloadd", "operatorIdentity"),
        ("limits.memoryBudgetMiB=lots", "memoryBudgetMiB"),
        ("metrics.service.enabeld=true", "enabeld"),
    ] {
        let out = helm(&[
            "template".into(),
            "ops".into(),
            chart.package.display().to_string(),
            "--set".into(),
            set.into(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(
            stderr.contains("schema") && stderr.contains(said),
            "{set}: {stderr}"
        );
    }
}

/// Two replicas get a PodDisruptionBudget (policy/v1, where the cluster serves it) and spread over
/// nodes and zones by default; a single replica gets no budget that would block every drain.
#[test]
fn replicas_get_a_disruption_budget_and_spread() {
    let mut chart = Chart::load();
    let policy_v1 = ["--api-versions", "policy/v1/PodDisruptionBudget"];
    let objects = chart.template_with(&release(), &policy_v1);
    let pdb = &objects
        .iter()
        .find(|(_, v)| v["kind"] == "PodDisruptionBudget")
        .expect("a PodDisruptionBudget")
        .1;
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let deployment = &objects
        .iter()
        .find(|(_, v)| v["kind"] == "Deployment")
        .unwrap()
        .1;
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let spread = pod["spec"]["topologySpreadConstraints"]
        .as_array()
        .expect("spread constraints");
    let keys: Vec<_> = spread.iter().map(|c| c["topologyKey"].clone()).collect();
    assert_eq!(
        keys,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    assert!(
        spread
            .iter()
            .all(|c| c["whenUnsatisfiable"] == "ScheduleAnyway")
    );
    assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 90);

    chart.set("replicas", serde_json::json!(1));
    let single = chart.template_with(&release(), &policy_v1);
    assert!(
        !single
            .iter()
            .any(|(_, v)| v["kind"] == "PodDisruptionBudget"),
        "a budget for one replica blocks every drain"
    );
}

/// Metrics bound to loopback cannot be reached by the metrics Service: the chart says so instead of
/// rendering a Service with no working endpoint.
#[test]
fn a_loopback_metrics_address_behind_the_service_is_refused() {
    let chart = Chart::load();
    let out = helm(&[
        "template".into(),
        "ops".into(),
        chart.package.display().to_string(),
        "--set".into(),
        "metrics.bindAddress=127.0.0.1:8081".into(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("metrics.bindAddress 127.0.0.1:8081 is loopback")
    );
    let mut chart = Chart::load();
    chart.set("metrics.bindAddress", serde_json::json!("0.0.0.0:8081"));
    let objects = chart.template(&release());
    let service = &objects
        .iter()
        .find(|(_, v)| v["kind"] == "Service")
        .unwrap()
        .1;
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
}

/// The monitoring pack is off by default; on, the PrometheusRule carries files/alerts.yaml as
/// promtool tested it, with only the runbook addresses moved to the configured base, and the
/// dashboard ConfigMap carries dashboards/kubeinvoke.json for Grafana's sidecar.
#[test]
fn the_monitoring_pack_ships_the_tested_rules_and_the_dashboard() {
    let mut chart = Chart::load();
    let kinds = |objects: &[(String, Value)]| -> Vec<String> {
        objects
            .iter()
            .map(|(_, v)| v["kind"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let default = kinds(&chart.template(&release()));
    assert!(!default.contains(&"PrometheusRule".to_string()));
    assert!(!default.contains(&"ConfigMap".to_string()));

    let base = "https://runbooks.example/kubeinvoke/operate.md";
    chart.set("metrics.prometheusRule.enabled", serde_json::json!(true));
    chart.set(
        "metrics.prometheusRule.runbookBaseURL",
        serde_json::json!(base),
    );
    chart.set(
        "metrics.prometheusRule.labels.release",
        serde_json::json!("prometheus"),
    );
    chart.set("metrics.dashboard.enabled", serde_json::json!(true));
    chart.set("metrics.dashboard.namespace", serde_json::json!("grafana"));
    let objects = chart.template(&release());
    let find = |file: &str| {
        objects
            .iter()
            .find(|(source, _)| source == file)
            .unwrap_or_else(|| panic!("{file} rendered nothing"))
            .1
            .clone()
    };

    let rule = find("prometheusrule.yaml");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let file = std::fs::read_to_string(chart.dir.join("files/alerts.yaml")).expect("alerts.yaml");
    let default_base = chart.values["metrics"]["prometheusRule"]["runbookBaseURL"]
        .as_str()
        .expect("a default runbookBaseURL")
        .to_string();
    let expected: Value =
        serde_saphyr::from_str(&file.replace(&default_base, base)).expect("alerts.yaml is YAML");
    assert_eq!(rule["spec"], expected);
    for r in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        let url = r["annotations"]["runbook_url"].as_str().unwrap();
        assert!(url.starts_with(&format!("{base}#")), "{url}");
    }

    let dashboard = find("dashboard.yaml");
    assert_eq!(dashboard["metadata"]["namespace"], "grafana");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json = std::fs::read_to_string(chart.dir.join("dashboards/kubeinvoke.json")).unwrap();
    let shipped: Value =
        serde_json::from_str(dashboard["data"]["kubeinvoke.json"].as_str().unwrap()).unwrap();
    assert_eq!(shipped, serde_json::from_str::<Value>(&json).unwrap());
}
