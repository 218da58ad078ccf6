//! `kubectl invoke ls`: the runs of a namespace (or of all, with `-A`), oldest first, with phase,
//! reason, exit code and age, in columns as `kubectl get` prints them.

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::Error;
use super::follow::human;
use crate::api::remote_command::RemoteCommand;

pub async fn print(client: &Client, namespace: &str, all_namespaces: bool) -> Result<u8, Error> {
    let api: Api<RemoteCommand> = if all_namespaces {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), namespace)
    };
    let mut items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| match all_namespaces {
            true => format!("listing RemoteCommands in all namespaces: {e}"),
            false => format!("listing RemoteCommands in namespace {namespace}: {e}"),
        })?
        .items;
    items.sort_by_key(|rc| rc.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let now = k8s_openapi::jiff::Timestamp::now();
    let rows: Vec<Row> = items.iter().map(|rc| Row::of(rc, now)).collect();
    print!("{}", table(&rows, all_namespaces));
    Ok(0)
}

struct Row {
    namespace: String,
    name: String,
    phase: String,
    reason: String,
    exit: String,
    age: String,
}

impl Row {
    fn of(rc: &RemoteCommand, now: k8s_openapi::jiff::Timestamp) -> Self {
        let s = rc.status.clone().unwrap_or_default();
        let dash = || "-".to_string();
        Row {
            namespace: rc.namespace().unwrap_or_default(),
            name: rc.name_any(),
            phase: s.phase.map(|p| format!("{p:?}")).unwrap_or_else(dash),
            reason: s.reason.unwrap_or_else(dash),
            exit: s.exit_code.map(|c| c.to_string()).unwrap_or_else(dash),
            age: rc
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| human(now.duration_since(t.0)))
                .unwrap_or_else(dash),
        }
    }
}

/// The rows under a header, each column as wide as its widest cell.
fn table(rows: &[Row], with_namespace: bool) -> String {
    let header = Row {
        namespace: "NAMESPACE".into(),
        name: "NAME".into(),
        phase: "PHASE".into(),
        reason: "REASON".into(),
        exit: "EXIT".into(),
        age: "AGE".into(),
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let width = |cell: fn(&Row) -> &str| all.iter().map(|r| cell(r).len()).max().unwrap_or(0);
    let (ns, name, phase, reason, exit) = (
        width(|r| &r.namespace),
        width(|r| &r.name),
        width(|r| &r.phase),
        width(|r| &r.reason),
        width(|r| &r.exit),
    );
    let mut out = String::new();
    for r in all {
        if with_namespace {
            out.push_str(&format!("{:<ns$}   ", r.namespace));
        }
        out.push_str(&format!(
            "{:<name$}   {:<phase$}   {:<reason$}   {:>exit$}   {}\n",
            r.name, r.phase, r.reason, r.exit, r.age
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(namespace: &str, name: &str, exit: &str) -> Row {
        Row {
            namespace: namespace.into(),
            name: name.into(),
            phase: "Succeeded".into(),
            reason: "Completed".into(),
            exit: exit.into(),
            age: "3m".into(),
        }
    }

    #[test]
    fn columns_line_up_and_the_namespace_comes_first_with_all_namespaces() {
        let rows = [
            row("team-a", "invoke-x7k2p", "0"),
            row("b", "nightly", "127"),
        ];
        let text = table(&rows, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAMESPACE   NAME "), "{text}");
        assert!(
            lines[1].starts_with("team-a      invoke-x7k2p   Succeeded"),
            "{text}"
        );
        let age_at = |l: &str| l.rfind(' ').unwrap();
        assert!(
            lines.iter().all(|l| age_at(l) == age_at(lines[0])),
            "{text}"
        );
        let one = table(&rows[..1], false);
        assert!(one.starts_with("NAME "), "{one}");
        assert!(!one.contains("team-a"), "{one}");
    }
}
