//! Following a fleet run by watching its RemoteCommandSet and its children (no polling): a line per
//! target as its RemoteCommand finishes, the set's changes of reason on stderr, then the targets
//! never launched, the summary (or `-o json|yaml`) and the exit status.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::report::{self, Labels, Line, Outcome};
use crate::api::remote_command::RemoteCommand;
use crate::api::remote_command_set::RemoteCommandSet;
use crate::cli::follow::{ACK_TIMEOUT, GRACE};
use crate::cli::{Error, OutputFormat, exit};
use crate::controllers::conditions::STALLED;
use crate::controllers::remote_command_set::children::RUN_LABEL;
use crate::controllers::remote_command_set::plan::child_name;

/// Where a set stands, as far as the CLI waits for it.
#[derive(Debug, PartialEq)]
enum Stand {
    /// No operator wrote its status yet.
    Unanswered,
    Going,
    /// Ended: every target finished, or launching stopped and nothing runs any more.
    Finished,
    /// Stopped on a reason of its own (`InvalidSpec`, `Forbidden`, `TargetNotFound`…) until its
    /// spec changes; children already launched still finish.
    Held,
}

fn stand(set: &RemoteCommandSet) -> Stand {
    let Some(s) = set.status.as_ref().filter(|s| s.reason.is_some()) else {
        return Stand::Unanswered;
    };
    if s.observed_generation != set.metadata.generation.unwrap_or_default() {
        return Stand::Going;
    }
    if s.completion_time.is_some() {
        return Stand::Finished;
    }
    let stalled = s
        .conditions
        .iter()
        .any(|c| c.type_ == STALLED && c.status == "True");
    if stalled { Stand::Held } else { Stand::Going }
}

/// Waits until the fleet run `name` ends, printing as it goes, and returns the exit status. With
/// `created`, the CLI made the set: if no operator answers it within [`ACK_TIMEOUT`], it is
/// withdrawn. The CLI gives up (244) when the run made no progress for a target's timeout plus
/// [`GRACE`]: every child ends within its own timeout, so a live run always moves within that.
pub async fn wait_and_report(
    client: &Client,
    namespace: &str,
    name: &str,
    format: OutputFormat,
    created: bool,
) -> Result<u8, Error> {
    let mut follower = Follower::new(client, namespace, name, format);
    tokio::select! {
        code = follower.run(created) => code,
        _ = tokio::signal::ctrl_c() => {
            eprintln!(
                "\ninterrupted: fleet run {namespace}/{name} goes on in the cluster; reattach with: kubectl invoke result {name} -n {namespace}"
            );
            Ok(exit::INTERRUPTED)
        }
    }
}

struct Follower {
    sets: Api<RemoteCommandSet>,
    commands: Api<RemoteCommand>,
    namespace: String,
    name: String,
    format: OutputFormat,
    started: Instant,
    /// The current run's key and targets (by child name), once the set has them.
    run: Option<(String, BTreeMap<String, String>)>,
    printed: BTreeSet<String>,
    lines: Vec<Line>,
    labels: Labels,
    last_reason: Option<String>,
}

impl Follower {
    fn new(client: &Client, namespace: &str, name: &str, format: OutputFormat) -> Self {
        Self {
            sets: Api::namespaced(client.clone(), namespace),
            commands: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            format,
            started: Instant::now(),
            run: None,
            printed: BTreeSet::new(),
            lines: Vec::new(),
            labels: Labels::new(&[]),
            last_reason: None,
        }
    }

    async fn run(&mut self, created: bool) -> Result<u8, Error> {
        let name = self.name.clone();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut sets = watcher::watcher(self.sets.clone(), config)
            .applied_objects()
            .boxed();
        let mut children: Option<BoxStream<'static, Result<RemoteCommand, watcher::Error>>> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut last: Option<RemoteCommandSet> = None;
        let mut moved = Instant::now();
        loop {
            tokio::select! {
                event = sets.next() => match event {
                    Some(Ok(set)) => {
                        if last.as_ref().map(|l| &l.metadata.resource_version) != Some(&set.metadata.resource_version) {
                            moved = Instant::now();
                        }
                        self.progress(&set);
                        if self.adopt_run(&set) {
                            let key = self.run.as_ref().map(|r| r.0.clone()).unwrap_or_default();
                            let config = watcher::Config::default().labels(&format!("{RUN_LABEL}={key}"));
                            children = Some(watcher::watcher(self.commands.clone(), config).applied_objects().boxed());
                        }
                        if matches!(stand(&set), Stand::Finished | Stand::Held)
                            && let Some(code) = self.try_end(&set).await?
                        {
                            return Ok(code);
                        }
                        last = Some(set);
                    }
                    Some(Err(watcher::Error::InitialListFailed(e))) => {
                        return Err(format!("watching RemoteCommandSet {name}: {e}").into())
                    }
                    Some(Err(_)) => {}
                    None => return Err("the watch ended".into()),
                },
                event = next_child(&mut children) => match event {
                    Some(Ok(rc)) => {
                        moved = Instant::now();
                        let Some(set) = last.clone() else { continue };
                        self.child(&set, &rc);
                        // A held set does not change when its last launched target ends.
                        if stand(&set) == Stand::Held
                            && let Some(code) = self.try_end(&set).await?
                        {
                            return Ok(code);
                        }
                    }
                    Some(Err(watcher::Error::InitialListFailed(e))) => {
                        return Err(format!("watching the RemoteCommands of {name}: {e}").into())
                    }
                    Some(Err(_)) => {}
                    None => children = None,
                },
                _ = tick.tick() => {
                    let Some(set) = &last else { continue };
                    if created && stand(set) == Stand::Unanswered && self.started.elapsed() >= ACK_TIMEOUT {
                        if let Some(code) = self.withdraw(set).await? {
                            return Ok(code);
                        }
                        continue;
                    }
                    let timeout = set.spec.template.timeout_seconds
                        .unwrap_or(crate::api::remote_command::DEFAULT_TIMEOUT_SECONDS);
                    let patience = Duration::from_secs(timeout.max(0) as u64) + GRACE;
                    if stand(set) != Stand::Unanswered && moved.elapsed() >= patience {
                        let s = set.status.clone().unwrap_or_default();
                        eprintln!(
                            "{}/{name}: no progress for {}s ({}: {}); the fleet run is left to the cluster \
                             (kubectl invoke result {name} -n {})",
                            self.namespace, patience.as_secs(),
                            s.reason.unwrap_or_default(),
                            crate::text::clean(s.message.as_deref().unwrap_or_default(), 300),
                            self.namespace,
                        );
                        return Ok(exit::DEADLINE);
                    }
                }
            }
        }
    }

    /// One stderr line per change of the set's reason.
    fn progress(&mut self, set: &RemoteCommandSet) {
        let s = set.status.clone().unwrap_or_default();
        let Some(reason) = s.reason else { return };
        if self.last_reason.as_ref() == Some(&reason) {
            return;
        }
        eprintln!(
            "[{:>6.1}s] {}: {reason} {}",
            self.started.elapsed().as_secs_f64(),
            self.name,
            crate::text::clean(s.message.as_deref().unwrap_or_default(), 300)
        );
        self.last_reason = Some(reason);
    }

    /// Takes the set's current run when it is new to the CLI; true when its children are to be
    /// watched (again).
    fn adopt_run(&mut self, set: &RemoteCommandSet) -> bool {
        let Some(s) = &set.status else { return false };
        let Some(key) = s.run_key.clone() else {
            return false;
        };
        if self.run.as_ref().is_some_and(|r| r.0 == key) {
            return false;
        }
        let by_child = s
            .targets
            .iter()
            .map(|t| (child_name(&set.name_any(), &key, t), t.clone()))
            .collect();
        self.labels = Labels::new(&s.targets);
        if self.run.is_some() {
            eprintln!("{}: a new run started (the set's spec changed)", self.name);
        }
        self.printed.clear();
        self.lines.clear();
        self.run = Some((key, by_child));
        if self.format == OutputFormat::Text && !s.targets.is_empty() {
            println!("{}", report::header(self.labels.width()));
        }
        true
    }

    /// Prints a child's line the first time it is seen finished.
    fn child(&mut self, set: &RemoteCommandSet, rc: &RemoteCommand) {
        let uid = set.uid().unwrap_or_default();
        if !rc.owner_references().iter().any(|o| o.uid == uid) || !finished(rc) {
            return;
        }
        let Some(target) = self
            .run
            .as_ref()
            .and_then(|r| r.1.get(&rc.name_any()).cloned())
        else {
            return;
        };
        if self.printed.insert(rc.name_any()) {
            self.emit(Line::of(&target, rc));
        }
    }

    fn emit(&mut self, line: Line) {
        let text = report::text(&line, &self.labels, self.labels.width());
        match self.format {
            OutputFormat::Text => println!("{text}"),
            _ => eprintln!("{text}"),
        }
        self.lines.push(line);
    }

    /// The set ended (or is held): reads its children once more from the API server, prints what
    /// the watch has not shown yet and the targets never launched, then the summary. A held set
    /// whose launched children still run is waited for (`None`).
    async fn try_end(&mut self, set: &RemoteCommandSet) -> Result<Option<u8>, Error> {
        let held = stand(set) == Stand::Held;
        let mut listed = Vec::new();
        if let Some((key, _)) = &self.run {
            let params = ListParams::default().labels(&format!("{RUN_LABEL}={key}"));
            let uid = set.uid().unwrap_or_default();
            listed = self
                .commands
                .list(&params)
                .await
                .map_err(|e| format!("listing the RemoteCommands of {}: {e}", self.name))?
                .items
                .into_iter()
                .filter(|rc| rc.owner_references().iter().any(|o| o.uid == uid))
                .collect();
        }
        if held && listed.iter().any(|rc| !finished(rc)) {
            return Ok(None);
        }
        for rc in &listed {
            self.child(set, rc);
        }
        self.unlaunched(set, &listed);
        let code = report::exit_status(set, held, &self.lines);
        let s = set.status.clone().unwrap_or_default();
        let reason = s.reason.clone().unwrap_or_default();
        let summary = report::summary(
            &self.name,
            &reason,
            &self.lines,
            self.started.elapsed().as_secs_f64(),
            code,
        );
        match self.format {
            OutputFormat::Text => println!("{summary}"),
            format => {
                eprintln!("{summary}");
                let doc = report::document(set, &self.lines, code);
                let text = match format {
                    OutputFormat::Json => serde_json::to_string_pretty(&doc)? + "\n",
                    _ => serde_saphyr::to_string(&doc)?,
                };
                print!("{text}");
            }
        }
        if held {
            eprintln!(
                "{}/{}: held: {reason}: {}",
                self.namespace,
                self.name,
                crate::text::clean(s.message.as_deref().unwrap_or_default(), 1024)
            );
        }
        if s.target_count == 0 && !held {
            eprintln!("note: the fleet run had no targets (nothing matched the selector)");
        }
        if let Some(l) = self.lines.iter().find(|l| l.remote_command.is_some()) {
            eprintln!(
                "a target's output: kubectl invoke result {} -n {}",
                l.remote_command.as_deref().unwrap_or_default(),
                self.namespace
            );
        }
        Ok(Some(code))
    }

    /// Lines for the targets without a RemoteCommand: never launched; or, when the set counts
    /// fewer not started than that, launched and since deleted (failed ones as its
    /// `failedTargets` tell).
    fn unlaunched(&mut self, set: &RemoteCommandSet, listed: &[RemoteCommand]) {
        let s = set.status.clone().unwrap_or_default();
        let have: BTreeSet<String> = listed.iter().map(|rc| rc.name_any()).collect();
        let Some((key, _)) = &self.run else {
            return;
        };
        let order: Vec<(String, String)> = s
            .targets
            .iter()
            .map(|t| (child_name(&set.name_any(), key, t), t.clone()))
            .filter(|(c, _)| !have.contains(c) && !self.printed.contains(c))
            .collect();
        // Launching goes in target order, so the never launched are the last ones.
        let never = usize::try_from(s.not_started.max(0)).unwrap_or(0);
        let first_never = order.len().saturating_sub(never);
        let reason = s.reason.clone().unwrap_or_default();
        for (i, (child, target)) in order.into_iter().enumerate() {
            self.printed.insert(child.clone());
            let failed = s.failed_targets.iter().find(|f| f.name == child);
            let line = match failed {
                Some(f) => {
                    let mut l = Line::without_child(
                        &target,
                        Outcome::Failed,
                        f.reason.as_deref().unwrap_or_default(),
                        "its RemoteCommand is gone",
                    );
                    l.exit_code = f.exit_code;
                    l
                }
                None if i >= first_never => Line::without_child(
                    &target,
                    Outcome::NotStarted,
                    &reason,
                    s.message.as_deref().unwrap_or_default(),
                ),
                None => Line::without_child(
                    &target,
                    Outcome::Unknown,
                    "Gone",
                    "its RemoteCommand was deleted",
                ),
            };
            self.emit(line);
        }
    }

    /// Deletes the set no operator answered, on the condition that it is as the CLI last saw it:
    /// an operator that answered meanwhile wins (`None`) and the run is followed as usual.
    async fn withdraw(&self, set: &RemoteCommandSet) -> Result<Option<u8>, Error> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: set.metadata.resource_version.clone(),
                uid: set.metadata.uid.clone(),
            }),
            ..Default::default()
        };
        match self.sets.delete(&self.name, &params).await {
            Ok(_) => {
                eprintln!(
                    "{}/{}: no kubeinvoke operator answered within {}s, so none serves namespace {}; \
                     the fleet run was withdrawn and nothing was launched",
                    self.namespace,
                    self.name,
                    ACK_TIMEOUT.as_secs(),
                    self.namespace
                );
                Ok(Some(exit::NO_OPERATOR))
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
            Err(e) => Err(format!("withdrawing {}/{}: {e}", self.namespace, self.name).into()),
        }
    }
}

/// The next child event, or never while the children are not watched yet.
async fn next_child(
    children: &mut Option<BoxStream<'static, Result<RemoteCommand, watcher::Error>>>,
) -> Option<Result<RemoteCommand, watcher::Error>> {
    match children {
        Some(stream) => stream.try_next().await.transpose(),
        None => std::future::pending().await,
    }
}

/// Terminal, for its current spec.
fn finished(rc: &RemoteCommand) -> bool {
    crate::controllers::remote_command::status::is_current_run(rc)
        && rc
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|p| p.is_terminal())
}
