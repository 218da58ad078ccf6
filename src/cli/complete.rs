//! Completion as kubectl asks plugins for it (kubectl 1.26 and later): kubectl runs the executable
//! `kubectl_complete-invoke` found on PATH with the words after `kubectl invoke`, the last one being
//! the word to complete, and reads one candidate a line (`value<TAB>description`) ending with
//! `:<directive>` (cobra's protocol). This binary answers when it is called by that name (a link
//! to it) or as `kubectl-invoke __complete WORDS…`. Subcommands, flags and fixed values come from
//! the same clap definition as the commands; run and fleet run names, KubeconfigExports, namespaces and contexts
//! from the management cluster and the kubeconfig, best effort and quickly.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Arg, Command, CommandFactory, ValueHint};
use kube::api::{Api, ListParams};
use kube::config::Kubeconfig;
use kube::{Client, ResourceExt};

use super::{ClusterArgs, InvokeArgs};
use crate::api::KubeconfigExport;
use crate::api::remote_command::RemoteCommand;
use crate::api::remote_command_set::RemoteCommandSet;
use k8s_openapi::api::core::v1::Namespace;

/// The name kubectl looks for on PATH to complete `kubectl invoke`.
pub const COMPLETER: &str = "kubectl_complete-invoke";
/// The first argument that asks this binary for completions (as cobra programs take it).
pub const REQUEST: &str = "__complete";
/// How long completion may wait for the management cluster.
const CLUSTER_PATIENCE: Duration = Duration::from_secs(3);

/// cobra's ShellCompDirective: fall back to file names.
const FILES: u32 = 0;
/// cobra's ShellCompDirective: no file names.
const NO_FILES: u32 = 4;

/// The words to complete when this process was asked for completions (by its name or by
/// [`REQUEST`]), else `None`.
pub fn request(args: &[OsString]) -> Option<Vec<String>> {
    let called = args
        .first()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let words = |from: usize| {
        args.iter()
            .skip(from)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    if called == COMPLETER {
        // Also as `kubectl_complete-invoke __complete …`, the way cobra plugins are wrapped.
        let skip = if args.get(1).is_some_and(|a| a == REQUEST) {
            2
        } else {
            1
        };
        return Some(words(skip));
    }
    (args.get(1).is_some_and(|a| a == REQUEST)).then(|| words(2))
}

/// Prints the candidates for `words` (the last is the one being typed) in cobra's format.
pub async fn answer(words: Vec<String>) -> ExitCode {
    let mut command = InvokeArgs::command();
    command.build();
    let wanted = analyse(&command, &words);
    let (candidates, directive) = match wanted.source {
        Source::Fixed(values, directive) => (values, directive),
        Source::Cluster(what) => {
            let listed = tokio::time::timeout(CLUSTER_PATIENCE, list(what, &wanted.cluster)).await;
            (
                listed.ok().and_then(Result::ok).unwrap_or_default(),
                NO_FILES,
            )
        }
    };
    let mut out = String::new();
    for (value, help) in candidates {
        let value = format!("{}{value}", wanted.prefix);
        if !value.starts_with(&wanted.typed) {
            continue;
        }
        let help = help.lines().next().unwrap_or_default().trim().to_string();
        if help.is_empty() {
            out.push_str(&format!("{value}\n"));
        } else {
            out.push_str(&format!("{value}\t{help}\n"));
        }
    }
    out.push_str(&format!(":{directive}\n"));
    print!("{out}");
    ExitCode::SUCCESS
}

/// What the word being typed can be.
#[derive(Debug, PartialEq)]
struct Wanted {
    /// The word as typed so far.
    typed: String,
    /// What every candidate starts with (`--output=` when completing after `=`).
    prefix: String,
    source: Source,
    /// `--kubeconfig`, `--context` and `-n` as given before the word.
    cluster: ClusterArgs,
}

#[derive(Debug, PartialEq)]
enum Source {
    /// These values (with a description), and whether the shell may offer file names instead.
    Fixed(Vec<(String, String)>, u32),
    Cluster(Listed),
}

/// What completion reads from the management cluster or the kubeconfig.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Listed {
    Runs,
    Exports,
    Namespaces,
    Contexts,
}

/// Walks the words before the last through the command tree, then says what the last may be.
fn analyse(root: &Command, words: &[String]) -> Wanted {
    let (typed, done) = match words.split_last() {
        Some((last, done)) => (last.clone(), done),
        None => (String::new(), &[][..]),
    };
    let mut command = root;
    let mut positionals = 0;
    let mut awaiting: Option<&Arg> = None;
    let mut cluster = ClusterArgs::default();
    let mut only_positionals = false;
    for word in done {
        if let Some(arg) = awaiting.take() {
            remember(&mut cluster, arg, word);
            continue;
        }
        if only_positionals || !word.starts_with('-') || word == "-" {
            match command.find_subcommand(word) {
                Some(sub) if positionals == 0 && !only_positionals => command = sub,
                _ => positionals += 1,
            }
            continue;
        }
        if word == "--" {
            only_positionals = true;
            continue;
        }
        let (arg, inline) = find_flag(command, word);
        match (arg, inline) {
            (Some(arg), Some(value)) => remember(&mut cluster, arg, &value),
            (Some(arg), None) if takes_value(arg) => awaiting = Some(arg),
            _ => {}
        }
    }
    let wanted = |prefix: String, source| Wanted {
        typed: typed.clone(),
        prefix,
        source,
        cluster: cluster.clone(),
    };
    if let Some(arg) = awaiting {
        return wanted(String::new(), values(command, arg));
    }
    if typed.starts_with("--")
        && let Some((flag, _)) = typed.split_once('=')
    {
        let source = match find_flag(command, flag).0 {
            Some(arg) if takes_value(arg) => values(command, arg),
            _ => Source::Fixed(Vec::new(), NO_FILES),
        };
        return wanted(format!("{flag}="), source);
    }
    if typed.starts_with('-') && !only_positionals {
        return wanted(
            String::new(),
            Source::Fixed(flags(command, &typed), NO_FILES),
        );
    }
    let subcommands: Vec<(String, String)> = if positionals == 0 {
        command
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| (s.get_name().to_string(), about(s.get_about())))
            .collect()
    } else {
        Vec::new()
    };
    if !subcommands.is_empty() {
        return wanted(String::new(), Source::Fixed(subcommands, NO_FILES));
    }
    match command.get_positionals().nth(positionals) {
        Some(arg) => wanted(String::new(), values(command, arg)),
        None => wanted(String::new(), Source::Fixed(Vec::new(), NO_FILES)),
    }
}

/// The flag `word` names in `command` (`--long`, `--long=value`, `-s`, `-svalue`), with a value
/// given in the same word.
fn find_flag<'a>(command: &'a Command, word: &str) -> (Option<&'a Arg>, Option<String>) {
    if let Some(long) = word.strip_prefix("--") {
        let (name, value) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (long, None),
        };
        let arg = command.get_arguments().find(|a| {
            a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
        });
        return (arg, value);
    }
    let mut chars = word.trim_start_matches('-').chars();
    let Some(short) = chars.next() else {
        return (None, None);
    };
    let rest: String = chars.collect();
    let arg = command
        .get_arguments()
        .find(|a| a.get_short() == Some(short));
    let value = (!rest.is_empty() && arg.is_some_and(takes_value)).then_some(rest);
    (arg, value)
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.takes_values())
}

/// Keeps what completion needs to reach the right cluster and namespace.
fn remember(cluster: &mut ClusterArgs, arg: &Arg, value: &str) {
    match arg.get_id().as_str() {
        "kubeconfig" => cluster.kubeconfig = Some(PathBuf::from(value)),
        "context" => cluster.context = Some(value.to_string()),
        "namespace" => cluster.namespace = Some(value.to_string()),
        _ => {}
    }
}

/// The values `arg` of `command` takes.
fn values(command: &Command, arg: &Arg) -> Source {
    match (command.get_name(), arg.get_id().as_str()) {
        (_, "namespace") => return Source::Cluster(Listed::Namespaces),
        (_, "context") => return Source::Cluster(Listed::Contexts),
        ("result", "name") => return Source::Cluster(Listed::Runs),
        ("kubeconfig", "name") => return Source::Cluster(Listed::Exports),
        _ => {}
    }
    let fixed: Vec<(String, String)> = arg
        .get_possible_values()
        .into_iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| (v.get_name().to_string(), about(v.get_help())))
        .collect();
    if !fixed.is_empty() {
        return Source::Fixed(fixed, NO_FILES);
    }
    match arg.get_value_hint() {
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath => {
            Source::Fixed(Vec::new(), FILES)
        }
        _ => Source::Fixed(Vec::new(), NO_FILES),
    }
}

/// The flags of `command` (its own and the global ones): long names, and short ones too when only
/// `-` is typed.
fn flags(command: &Command, typed: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
        let help = about(arg.get_help());
        if let Some(long) = arg.get_long() {
            out.push((format!("--{long}"), help.clone()));
        }
        if typed == "-"
            && let Some(short) = arg.get_short()
        {
            out.push((format!("-{short}"), help));
        }
    }
    out
}

fn about(text: Option<&clap::builder::StyledStr>) -> String {
    text.map(|t| t.to_string()).unwrap_or_default()
}

/// Names from the management cluster (or the kubeconfig's contexts).
async fn list(what: Listed, cluster: &ClusterArgs) -> Result<Vec<(String, String)>, super::Error> {
    if what == Listed::Contexts {
        let kubeconfig = match &cluster.kubeconfig {
            Some(path) => Kubeconfig::read_from(path)?,
            None => Kubeconfig::read()?,
        };
        return Ok(kubeconfig
            .contexts
            .into_iter()
            .map(|c| (c.name, String::new()))
            .collect());
    }
    let (client, namespace): (Client, String) = super::connect(cluster).await?;
    let params = ListParams::default();
    let names: Vec<(String, String)> = match what {
        Listed::Runs => {
            let mut names: Vec<(String, String)> =
                Api::<RemoteCommand>::namespaced(client.clone(), &namespace)
                    .list(&params)
                    .await?
                    .items
                    .into_iter()
                    .map(|rc| {
                        let s = rc.status.clone().unwrap_or_default();
                        let phase = s.phase.map(|p| format!("{p:?}")).unwrap_or_default();
                        (
                            rc.name_any(),
                            format!("{phase} {}", s.reason.unwrap_or_default()),
                        )
                    })
                    .collect();
            // Fleet runs too, when the user may list them.
            if let Ok(sets) = Api::<RemoteCommandSet>::namespaced(client, &namespace)
                .list(&params)
                .await
            {
                names.extend(sets.items.into_iter().map(|set| {
                    let s = set.status.clone().unwrap_or_default();
                    let reason = s.reason.unwrap_or_default();
                    (set.name_any(), format!("fleet {reason}"))
                }));
            }
            names
        }
        Listed::Exports => Api::<KubeconfigExport>::namespaced(client, &namespace)
            .list(&params)
            .await?
            .items
            .into_iter()
            .map(|k| (k.name_any(), String::new()))
            .collect(),
        Listed::Namespaces => Api::<Namespace>::all(client)
            .list(&params)
            .await?
            .items
            .into_iter()
            .map(|n| (n.name_any(), String::new()))
            .collect(),
        Listed::Contexts => Vec::new(),
    };
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(line: &str) -> Wanted {
        let mut command = InvokeArgs::command();
        command.build();
        let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
        if line.is_empty() {
            words = vec![String::new()];
        }
        analyse(&command, &words)
    }

    fn names(w: &Wanted) -> Vec<String> {
        match &w.source {
            Source::Fixed(values, _) => values
                .iter()
                .map(|(v, _)| format!("{}{v}", w.prefix))
                .filter(|v| v.starts_with(&w.typed))
                .collect(),
            Source::Cluster(_) => Vec::new(),
        }
    }

    #[test]
    fn subcommands_then_flags_then_values() {
        let top = names(&wanted(""));
        for sub in ["aks", "aci", "result", "ls", "kubeconfig", "completion"] {
            assert!(top.contains(&sub.to_string()), "{sub} in {top:?}");
        }
        assert!(!top.contains(&"help".to_string()));
        assert_eq!(names(&wanted("a")), ["aks", "aci"]);
        // Fleet mode's flags, on both run commands.
        for sub in ["aks", "aci"] {
            let flags = names(&wanted(&format!("{sub} --")));
            for flag in [
                "--selector",
                "--all",
                "--id",
                "--subscription",
                "--resource-group",
                "--max-concurrency",
                "--max-errors",
            ] {
                assert!(
                    flags.contains(&flag.to_string()),
                    "{sub}: {flag} in {flags:?}"
                );
            }
        }
        assert!(names(&wanted("aks -")).contains(&"-l".to_string()));
        let flags = names(&wanted("aks --t"));
        assert!(
            flags.contains(&"--timeout".to_string()) && flags.contains(&"--ttl".to_string()),
            "{flags:?}"
        );
        // Global flags are offered on every subcommand.
        assert!(names(&wanted("ls --")).contains(&"--all-namespaces".to_string()));
        assert!(names(&wanted("aks --")).contains(&"--kubeconfig".to_string()));
        assert_eq!(names(&wanted("aks -o ")), ["text", "json", "yaml"]);
        assert_eq!(names(&wanted("result x --output=j")), ["--output=json"]);
        assert_eq!(
            names(&wanted("completion ")),
            ["bash", "elvish", "fish", "powershell", "zsh"]
        );
        // -o is the output format wherever it is taken.
        assert_eq!(names(&wanted("result -o y")), ["yaml"]);
    }

    #[test]
    fn files_are_left_to_the_shell_and_names_come_from_the_cluster() {
        let file = wanted("aks x --file ");
        assert_eq!(file.source, Source::Fixed(Vec::new(), FILES));
        assert_eq!(
            wanted("--kubeconfig ").source,
            Source::Fixed(Vec::new(), FILES)
        );
        assert_eq!(
            wanted("kubeconfig x --output-file ").source,
            Source::Fixed(Vec::new(), FILES)
        );
        assert_eq!(wanted("result ").source, Source::Cluster(Listed::Runs));
        assert_eq!(
            wanted("kubeconfig ").source,
            Source::Cluster(Listed::Exports)
        );
        assert_eq!(wanted("ls -n ").source, Source::Cluster(Listed::Namespaces));
        assert_eq!(
            wanted("--context ").source,
            Source::Cluster(Listed::Contexts)
        );
        // A command line takes no completion; neither does a duration, nor a selector.
        assert_eq!(
            wanted("aks --selector ").source,
            Source::Fixed(Vec::new(), NO_FILES)
        );
        assert_eq!(
            wanted("aks x --command ").source,
            Source::Fixed(Vec::new(), NO_FILES)
        );
        assert_eq!(
            wanted("aks x --ttl ").source,
            Source::Fixed(Vec::new(), NO_FILES)
        );
    }

    #[test]
    fn the_cluster_flags_before_the_word_are_used_to_list_names() {
        let w = wanted("--context prod -n team-a --kubeconfig=/k result in");
        assert_eq!(w.source, Source::Cluster(Listed::Runs));
        assert_eq!(w.cluster.context.as_deref(), Some("prod"));
        assert_eq!(w.cluster.namespace.as_deref(), Some("team-a"));
        assert_eq!(w.cluster.kubeconfig, Some(PathBuf::from("/k")));
        assert_eq!(w.typed, "in");
        assert_eq!(
            wanted("result -nteam-b ").cluster.namespace.as_deref(),
            Some("team-b")
        );
    }

    #[test]
    fn asked_by_name_or_by_the_request_word() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            request(&os(&["/bin/kubectl_complete-invoke", "aks", ""])),
            Some(vec!["aks".to_string(), String::new()])
        );
        assert_eq!(
            request(&os(&["kubectl_complete-invoke", "__complete", "r"])),
            Some(vec!["r".to_string()])
        );
        assert_eq!(
            request(&os(&["kubectl-invoke", "__complete", "ls", "-"])),
            Some(vec!["ls".to_string(), "-".to_string()])
        );
        assert_eq!(request(&os(&["kubectl-invoke", "ls"])), None);
    }
}
