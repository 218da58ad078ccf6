//! Runs AKS run commands for real: `sh -c <command>` in a fresh directory holding the unzipped
//! `context`, stdout and stderr on one pipe, output capped (the first bytes are kept).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;

use crate::state::Shared;

#[derive(Debug, Clone)]
pub enum Outcome {
    Finished {
        exit_code: i32,
        logs: String,
        finished_at: SystemTime,
    },
    /// provisioningState Failed. `started`: the command ran and then failed (the result carries
    /// `startedAt`); otherwise it never started (no `startedAt`), which is safe to send again.
    Failed {
        reason: String,
        message: Option<String>,
        started: bool,
    },
}

#[derive(Debug, Clone)]
pub struct CommandRecord {
    /// Lower-cased `sub/rg/cluster` the command belongs to.
    pub cluster_key: String,
    pub started_at: SystemTime,
    /// The result is not shown before this instant (`commandDuration`).
    pub visible_at: Instant,
    /// `startedAt` + `commandDuration`: the earliest reported `finishedAt`.
    pub min_finished_at: SystemTime,
    /// The command is known to have started (a host process at once, a pod once it runs): an
    /// in-progress poll then shows `startedAt`.
    pub started: bool,
    pub outcome: Option<Outcome>,
}

/// Decodes `context` (base64 of a zip, MIME line breaks tolerated) and extracts it into `dir`.
/// Entries with absolute paths or `..` are rejected.
pub fn extract_context(context: &str, dir: &Path) -> Result<usize, String> {
    let compact: String = context
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Ok(0);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("context is not valid base64: {e}"))?;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("context is not a valid zip archive: {e}"))?;
    let mut files = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| format!("zip entry {i}: {e}"))?;
        let name = entry
            .name()
            .map_err(|e| format!("zip entry {i}: {e}"))?
            .replace('\\', "/");
        let rel = Path::new(&name);
        let unsafe_path = name.starts_with('/')
            || rel
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if unsafe_path {
            return Err(format!(
                "context contains an unsafe path '{name}' (absolute or with '..')"
            ));
        }
        let target = dir.join(rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut out = std::fs::File::create(&target).map_err(|e| e.to_string())?;
        std::io::copy(&mut entry, &mut out).map_err(|e| format!("extract {name}: {e}"))?;
        files += 1;
    }
    Ok(files)
}

pub fn work_dir(id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kubeinvoke-emulator-cmd-{id}"))
}

/// Starts the command in the background; the record `id` is completed when it ends.
pub fn spawn(
    state: Shared,
    id: String,
    command: String,
    dir: PathBuf,
    env: BTreeMap<String, String>,
) {
    tokio::spawn(async move {
        let outcome = run(&command, &dir, &env, state.settings.log_cap).await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        if let Some(rec) = state.commands.lock().expect("commands lock").get_mut(&id) {
            rec.outcome = Some(outcome);
        }
    });
}

/// Like [`spawn`], in a pod on the world cluster's Kubernetes (see `command_pod`).
pub fn spawn_pod(
    state: Shared,
    id: String,
    command: String,
    context_zip: Vec<u8>,
    target: super::command_pod::PodTarget,
) {
    tokio::spawn(async move {
        let cap = state.settings.log_cap;
        let on_running = || {
            if let Some(rec) = state.commands.lock().expect("commands lock").get_mut(&id) {
                rec.started = true;
            }
        };
        let outcome =
            super::command_pod::run(&target, &id, &command, context_zip, cap, on_running).await;
        if let Some(rec) = state.commands.lock().expect("commands lock").get_mut(&id) {
            rec.outcome = Some(outcome);
        }
    });
}

/// The zip bytes of `context` (base64, MIME line breaks tolerated); empty when there is none.
pub fn decode_context(context: &str) -> Result<Vec<u8>, String> {
    let compact: String = context
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("context is not valid base64: {e}"))
}

async fn run(command: &str, dir: &Path, env: &BTreeMap<String, String>, cap: usize) -> Outcome {
    let failed = |e: std::io::Error| Outcome::Failed {
        reason: "KubernetesOperationError".into(),
        message: Some(format!("could not start the command: {e}")),
        started: false,
    };
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return failed(e),
    };
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .env("LANG", "C.UTF-8")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    // The Command holds the pipe's write ends; drop it so EOF arrives when the process exits.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = buf.clone();
    let reader_done = tokio::task::spawn_blocking(move || read_capped(reader, &sink, cap));
    let exit_code = match child.wait().await {
        Ok(status) => status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        }),
        Err(e) => return failed(e),
    };
    // Background children may keep the pipe open; don't wait for them for long.
    let _ = tokio::time::timeout(Duration::from_secs(2), reader_done).await;
    let bytes = buf.lock().expect("log buffer").clone();
    Outcome::Finished {
        exit_code,
        logs: cap_text(String::from_utf8_lossy(&bytes).into_owned(), cap),
        finished_at: SystemTime::now(),
    }
}

/// `text` cut to at most `cap` bytes at a character boundary. The raw cut may split a character
/// (and invalid bytes become 3-byte U+FFFD), so the text is cut again after decoding: the logs
/// never exceed the cap.
pub fn cap_text(mut text: String, cap: usize) -> String {
    if text.len() > cap {
        let mut end = cap;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Reads until EOF, keeping the first `cap` bytes and discarding the rest.
fn read_capped(mut reader: impl Read, sink: &Mutex<Vec<u8>>, cap: usize) {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut buf = sink.lock().expect("log buffer");
                let room = cap.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(files: &[(&str, &str)]) -> String {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, body) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        let bytes = w.finish().unwrap().into_inner();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("emu-test-{name}-{}", crate::state::random_hex()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn extracts_with_mime_line_breaks() {
        let b64 = zip_of(&[("a.txt", "hello"), ("sub/b.yaml", "x: 1")]);
        let mime: String = b64
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let d = tmp("mime");
        assert_eq!(extract_context(&mime, &d), Ok(2));
        assert_eq!(
            std::fs::read_to_string(d.join("sub/b.yaml")).unwrap(),
            "x: 1"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn rejects_traversal_and_absolute() {
        let d = tmp("bad");
        assert!(extract_context(&zip_of(&[("../evil", "x")]), &d).is_err());
        assert!(extract_context(&zip_of(&[("/etc/evil", "x")]), &d).is_err());
        assert!(extract_context("not base64!!", &d).is_err());
        assert_eq!(extract_context("", &d), Ok(0));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn capped_logs_stay_within_the_cap_at_a_character_boundary() {
        // "é" is 2 bytes, "✓" 3: a cap of 9 bytes falls inside the second "✓", whose 2 bytes
        // would decode to a 3-byte U+FFFD (10 bytes in all).
        let text = "ab\u{e9}\u{2713}\u{2713}\u{2713}";
        let sink = Mutex::new(Vec::new());
        read_capped(std::io::Cursor::new(text.as_bytes().to_vec()), &sink, 9);
        let raw = sink.lock().unwrap().clone();
        assert_eq!(raw.len(), 9);
        let logs = cap_text(String::from_utf8_lossy(&raw).into_owned(), 9);
        assert_eq!(logs, "ab\u{e9}\u{2713}");
        // Invalid bytes grow to U+FFFD when decoded; still within the cap.
        let lossy = cap_text(String::from_utf8_lossy(&[0xff; 6]).into_owned(), 6);
        assert!(lossy.len() <= 6 && lossy == "\u{fffd}\u{fffd}", "{lossy:?}");
        assert_eq!(cap_text("short".into(), 100), "short");
    }

    #[test]
    fn cap_keeps_the_beginning() {
        let sink = Mutex::new(Vec::new());
        read_capped(std::io::Cursor::new(vec![b'a'; 100]), &sink, 10);
        assert_eq!(sink.lock().unwrap().len(), 10);
    }
}
