//! Waiting for a run by watching it (no polling), with progress on stderr, then printing its
//! output byte for byte on stdout and choosing the exit code.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::{Error, OutputFormat, exit, exit_code};
use crate::api::Phase;
use crate::api::remote_command::RemoteCommand;

/// How long a run the CLI created may go unanswered before the CLI concludes that no operator
/// serves its namespace (an operator writes a status within seconds of a create).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long past the run's `timeoutSeconds` the CLI still waits for its verdict (the operator
/// writes it when the deadline passes; a run that outlives even this is left to the cluster).
pub const GRACE: Duration = Duration::from_secs(60);

/// Waits until `name` finishes, then prints its output (or outcome) and returns the exit code.
/// Ctrl-C stops waiting and leaves the run alone. With `created`, the CLI made the run itself: if
/// no operator answers it within [`ACK_TIMEOUT`], it is withdrawn (never sent) rather than left to
/// start whenever an operator comes back.
pub async fn wait_and_print(
    client: &Client,
    namespace: &str,
    name: &str,
    format: OutputFormat,
    created: bool,
) -> Result<u8, Error> {
    let api: Api<RemoteCommand> = Api::namespaced(client.clone(), namespace);
    let mut created = created;
    loop {
        let waited = tokio::select! {
            w = wait(&api, name, created) => w?,
            _ = tokio::signal::ctrl_c() => {
                eprintln!(
                    "\ninterrupted: {namespace}/{name} goes on in the cluster; reattach with: kubectl invoke result {name} -n {namespace}"
                );
                return Ok(exit::INTERRUPTED);
            }
        };
        match waited {
            Waited::Finished(rc) => return print_outcome(client, namespace, &rc, format).await,
            Waited::Unanswered(rc) => match withdraw(&api, namespace, &rc).await? {
                Some(code) => return Ok(code),
                // An operator answered at the last moment: it is a run like any other now.
                None => created = false,
            },
            Waited::TooLong(limit) => {
                eprintln!(
                    "{namespace}/{name}: no verdict {}s after the run's timeoutSeconds; it is left to the cluster \
                     (kubectl invoke result {name} -n {namespace})",
                    limit.as_secs()
                );
                return Ok(exit::DEADLINE);
            }
        }
    }
}

enum Waited {
    Finished(RemoteCommand),
    /// Nothing answered the run the CLI created.
    Unanswered(RemoteCommand),
    /// The run did not finish within its timeout plus [`GRACE`].
    TooLong(Duration),
}

/// Watches the one object until its current run is terminal, reporting each change; gives up on
/// a created run nobody answers, and on any run after its timeout plus [`GRACE`].
async fn wait(api: &Api<RemoteCommand>, name: &str, created: bool) -> Result<Waited, Error> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher::watcher(api.clone(), config).applied_objects());
    let mut progress = Progress::new(name);
    let mut tick = tokio::time::interval(Duration::from_millis(120));
    let started = tokio::time::Instant::now();
    let mut last: Option<RemoteCommand> = None;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(rc)) => {
                    progress.update(&rc);
                    if is_finished(&rc) {
                        progress.done();
                        return Ok(Waited::Finished(rc));
                    }
                    last = Some(rc);
                }
                Some(Err(watcher::Error::InitialListFailed(e))) => {
                    return Err(format!("watching RemoteCommand {name}: {e}").into())
                }
                // The watch is re-established by the watcher itself.
                Some(Err(_)) => {}
                None => return Err("the watch ended".into()),
            },
            _ = tick.tick() => {
                progress.spin();
                let Some(rc) = &last else { continue };
                let answered = rc.status.as_ref().is_some_and(|s| s.phase.is_some());
                if created && !answered && started.elapsed() >= ACK_TIMEOUT {
                    progress.done();
                    return Ok(Waited::Unanswered(rc.clone()));
                }
                let limit = Duration::from_secs(rc.spec.timeout_seconds.max(0) as u64) + GRACE;
                if answered && started.elapsed() >= limit {
                    progress.done();
                    return Ok(Waited::TooLong(limit));
                }
            }
        }
    }
}

/// Deletes a run no operator answered, on the condition that it is still as the CLI last saw it
/// (a resourceVersion precondition): an operator that wrote its status meanwhile wins (`None`),
/// and the run is then waited for like any other.
async fn withdraw(
    api: &Api<RemoteCommand>,
    namespace: &str,
    rc: &RemoteCommand,
) -> Result<Option<u8>, Error> {
    let name = rc.name_any();
    let mut seen = rc.clone();
    // A conflict may come from a label or annotation someone added: only a status means an
    // operator answered. Bounded: a few tries, then the run is followed like any other.
    for _ in 0..5 {
        let params = kube::api::DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                resource_version: seen.metadata.resource_version.clone(),
                uid: seen.metadata.uid.clone(),
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                eprintln!(
                    "{namespace}/{name}: no kubeinvoke operator answered within {}s, so none serves namespace {namespace}; \
                     the run was withdrawn and never sent",
                    ACK_TIMEOUT.as_secs()
                );
                return Ok(Some(exit::NO_OPERATOR));
            }
            Err(kube::Error::Api(e)) if e.code == 409 => match api.get_opt(&name).await? {
                Some(now) if now.status.as_ref().is_none_or(|s| s.phase.is_none()) => seen = now,
                _ => return Ok(None),
            },
            Err(e) => return Err(format!("withdrawing {namespace}/{name}: {e}").into()),
        }
    }
    Ok(None)
}

/// Terminal, and for the spec as it is now (not a previous generation's result).
fn is_finished(rc: &RemoteCommand) -> bool {
    crate::controllers::remote_command::status::is_current_run(rc)
        && rc
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|p| p.is_terminal())
}

/// Progress on stderr: a line per change of phase or reason; on a terminal, a spinner with the
/// elapsed time as well.
struct Progress {
    name: String,
    started: Instant,
    last: Option<(String, String)>,
    tty: bool,
    frame: usize,
}

impl Progress {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            started: Instant::now(),
            last: None,
            tty: std::io::stderr().is_terminal(),
            frame: 0,
        }
    }

    fn update(&mut self, rc: &RemoteCommand) {
        let s = rc.status.clone().unwrap_or_default();
        let phase = s
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "Pending".into());
        let reason = s.reason.unwrap_or_default();
        let now = (phase, reason);
        if self.last.as_ref() == Some(&now) {
            return;
        }
        let message = s.message.unwrap_or_default();
        self.clear();
        eprintln!(
            "[{:>6.1}s] {}: {} {} {}",
            self.started.elapsed().as_secs_f64(),
            self.name,
            now.0,
            now.1,
            crate::text::clean(&message, 200)
        );
        self.last = Some(now);
    }

    fn spin(&mut self) {
        if !self.tty {
            return;
        }
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        self.frame = (self.frame + 1) % FRAMES.len();
        let phase = self
            .last
            .as_ref()
            .map(|l| l.0.as_str())
            .unwrap_or("Pending");
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{} {} {:.0}s ",
            FRAMES[self.frame],
            phase,
            self.started.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }

    fn clear(&self) {
        if self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }

    fn done(&self) {
        self.clear();
    }
}

/// Prints the finished run: its output as is (`text`), or its outcome with the output.
async fn print_outcome(
    client: &Client,
    namespace: &str,
    rc: &RemoteCommand,
    format: OutputFormat,
) -> Result<u8, Error> {
    let s = rc.status.clone().unwrap_or_default();
    let phase = s.phase.unwrap_or_default();
    let reason = s.reason.clone().unwrap_or_default();
    let output = match &s.output_secret_name {
        Some(secret) => read_output(client, namespace, secret).await?,
        None => Vec::new(),
    };
    let code = exit_code(phase, &reason, s.exit_code, super::dispatched(&s));
    match format {
        OutputFormat::Text => {
            let mut out = std::io::stdout().lock();
            out.write_all(&output)?;
            out.flush()?;
        }
        OutputFormat::Json | OutputFormat::Yaml => {
            let mut doc = serde_json::json!({
                "name": rc.name_any(),
                "namespace": namespace,
                "phase": format!("{phase:?}"),
                "reason": reason,
                "message": s.message,
                "exitCode": s.exit_code,
                "attempts": s.attempts,
                "commandId": s.command_id,
                "correlationId": s.correlation_id,
                "outputTruncated": s.output_truncated.unwrap_or(false),
            });
            match String::from_utf8(output) {
                Ok(text) => doc["output"] = text.into(),
                Err(e) => {
                    use base64::Engine as _;
                    doc["outputBase64"] = base64::engine::general_purpose::STANDARD
                        .encode(e.into_bytes())
                        .into();
                }
            }
            let text = if format == OutputFormat::Json {
                serde_json::to_string_pretty(&doc)? + "\n"
            } else {
                serde_saphyr::to_string(&doc)?
            };
            print!("{text}");
        }
    }
    let summary = match (phase, s.exit_code) {
        (Phase::Succeeded, Some(c)) => format!("exited with {c}"),
        (Phase::Succeeded, None) => "finished; the target reports no exit code".into(),
        (_, Some(c)) if reason == "NonZeroExit" => format!("exited with {c}"),
        _ => format!(
            "{}: {}",
            crate::text::clean(&reason, 128),
            crate::text::clean(s.message.as_deref().unwrap_or_default(), 1024)
        ),
    };
    eprintln!(
        "{namespace}/{}: {summary} (exit status {code})",
        rc.name_any()
    );
    if reason == "DispatchInterrupted" {
        // docs/exactly-once.md: a replica paused mid-dispatch records ARM's answer when it wakes.
        eprintln!(
            "  if ARM had accepted it, a paused replica may still record its answer: `kubectl invoke result -n {namespace} {}` then shows ARM's result",
            rc.name_any()
        );
    }
    Ok(code)
}

async fn read_output(client: &Client, namespace: &str, name: &str) -> Result<Vec<u8>, Error> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| format!("reading output Secret {namespace}/{name}: {e}"))?;
    // A run whose ttlSecondsAfterFinished already passed took its output along; its verdict stands.
    let Some(secret) = secret else {
        eprintln!(
            "output Secret {namespace}/{name} is gone (deleted with its run after ttlSecondsAfterFinished?); no output to print"
        );
        return Ok(Vec::new());
    };
    Ok(secret
        .data
        .and_then(|mut d| d.remove("output"))
        .map(|b| b.0)
        .unwrap_or_default())
}

/// `3d`, `4h`, `12m` or `40s`, like kubectl's AGE.
pub fn human(d: k8s_openapi::jiff::SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
