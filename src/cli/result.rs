//! `kubectl invoke result NAME`: reattaches to a run (a RemoteCommand) or a fleet run (a
//! RemoteCommandSet), named plainly (a RemoteCommand first) or as `rcmd/NAME` / `rcmdset/NAME`.

use kube::Client;
use kube::api::Api;

use super::{Error, ResultArgs, fleet, follow};
use crate::api::remote_command::RemoteCommand;
use crate::api::remote_command_set::RemoteCommandSet;

/// What `kubectl invoke result` names: a RemoteCommand, a RemoteCommandSet, or either (a
/// RemoteCommand first).
#[derive(Debug, PartialEq, Eq)]
enum Reattach<'a> {
    Run(&'a str),
    Fleet(&'a str),
    Either(&'a str),
}

fn reattach_to(text: &str) -> Result<Reattach<'_>, String> {
    let Some((kind, name)) = text.split_once('/') else {
        return Ok(Reattach::Either(text));
    };
    let kind = kind.strip_suffix(".kubeinvoke.io").unwrap_or(kind);
    match kind.to_ascii_lowercase().as_str() {
        "rcmd" | "remotecommand" | "remotecommands" => Ok(Reattach::Run(name)),
        "rcmdset" | "remotecommandset" | "remotecommandsets" => Ok(Reattach::Fleet(name)),
        _ => Err(format!(
            "{text}: name a RemoteCommand or a RemoteCommandSet (NAME, rcmd/NAME or rcmdset/NAME)"
        )),
    }
}

/// `kubectl invoke result`: reattaches to a run or a fleet run.
pub async fn reattach(client: &Client, namespace: &str, r: &ResultArgs) -> Result<u8, Error> {
    let name = match reattach_to(&r.name)? {
        Reattach::Run(name) => name,
        Reattach::Fleet(name) => {
            return fleet::wait_and_report(client, namespace, name, r.output, false).await;
        }
        Reattach::Either(name) => {
            let runs: Api<RemoteCommand> = Api::namespaced(client.clone(), namespace);
            let found = runs
                .get_opt(name)
                .await
                .map_err(|e| format!("reading RemoteCommand {namespace}/{name}: {e}"))?;
            if found.is_none() {
                let sets: Api<RemoteCommandSet> = Api::namespaced(client.clone(), namespace);
                let set = sets.get_opt(name).await.map_err(|e| {
                    format!(
                        "no RemoteCommand {namespace}/{name}; reading the RemoteCommandSet: {e}"
                    )
                })?;
                if set.is_none() {
                    return Err(format!(
                        "no RemoteCommand or RemoteCommandSet {name} in namespace {namespace}"
                    )
                    .into());
                }
                return fleet::wait_and_report(client, namespace, name, r.output, false).await;
            }
            name
        }
    };
    follow::wait_and_print(client, namespace, name, r.output, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_names_a_run_a_fleet_run_or_either() {
        assert_eq!(reattach_to("invoke-x"), Ok(Reattach::Either("invoke-x")));
        assert_eq!(reattach_to("rcmd/a"), Ok(Reattach::Run("a")));
        assert_eq!(
            reattach_to("remotecommands.kubeinvoke.io/a"),
            Ok(Reattach::Run("a"))
        );
        assert_eq!(reattach_to("rcmdset/f"), Ok(Reattach::Fleet("f")));
        assert_eq!(reattach_to("RemoteCommandSet/f"), Ok(Reattach::Fleet("f")));
        assert!(reattach_to("pod/x").is_err());
    }
}
