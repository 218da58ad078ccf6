//! The ACI exec websocket: password first, then a terminal-like stream to one executable
//! started without arguments. The socket closes with 1000 when the process exits; no exit code.

use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::server::tag;
use crate::state::Shared;

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecSession {
    pub id: String,
    #[serde(skip)]
    pub password: String,
    pub command: String,
    pub rows: Option<u32>,
    pub cols: Option<u32>,
    pub container_group: String,
    pub container: String,
    #[serde(skip)]
    pub expires: Instant,
    /// A websocket has connected (sessions are single-use).
    pub used: bool,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("id", &self.id)
            .field("password", &"<redacted>")
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

const OP: &str = "aci.websocket";

/// `GET /_aci/exec/{session}` (websocket upgrade).
pub async fn handler(
    State(state): State<Shared>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let session = {
        let mut sessions = state.exec_sessions.lock().expect("sessions lock");
        match sessions.get_mut(&id) {
            Some(s) if !s.used && s.expires > Instant::now() => {
                s.used = true;
                Some(s.clone())
            }
            _ => None,
        }
    };
    let Some(session) = session else {
        return tag(
            (StatusCode::NOT_FOUND, "exec session not found or expired").into_response(),
            OP,
            None,
        );
    };
    let resp = ws.on_upgrade(move |socket| run(socket, state, session));
    tag(resp, OP, None)
}

async fn close(ws: &mut WebSocket, code: u16, reason: &str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

fn not_found_message(command: &str) -> String {
    let quoted = command.replace('"', "\\\"");
    format!(
        "rpc error: code = 2 desc = oci runtime error: exec failed: container_linux.go:247: starting container process caused \"exec: \\\"{quoted}\\\": executable file not found in $PATH\"\r\n"
    )
}

fn find_executable(command: &str) -> Option<PathBuf> {
    let is_exec = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| {
            m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
        })
    };
    if command.contains('/') {
        let p = PathBuf::from(command);
        return is_exec(&p).then_some(p);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|d| PathBuf::from(d).join(command))
        .find(|p| is_exec(p))
}

/// Terminal output translation: `\n` → `\r\n`.
pub fn onlcr(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for &b in bytes {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Splits off the longest valid UTF-8 prefix; an incomplete trailing sequence stays pending.
fn take_utf8(pending: &mut Vec<u8>) -> String {
    match std::str::from_utf8(pending) {
        Ok(s) => {
            let s = s.to_string();
            pending.clear();
            s
        }
        Err(e) if e.error_len().is_none() => {
            let rest = pending.split_off(e.valid_up_to());
            let s = String::from_utf8_lossy(pending).into_owned();
            *pending = rest;
            s
        }
        Err(_) => {
            let s = String::from_utf8_lossy(pending).into_owned();
            pending.clear();
            s
        }
    }
}

async fn run(mut ws: WebSocket, state: Shared, s: ExecSession) {
    let first = tokio::time::timeout(Duration::from_secs(30), ws.recv()).await;
    let ok = matches!(&first, Ok(Some(Ok(Message::Text(t)))) if t.as_str() == s.password);
    if !ok {
        close(&mut ws, 1008, "invalid password").await;
        return;
    }
    *state
        .stats()
        .exec_sessions
        .entry(s.command.clone())
        .or_default() += 1;
    let exe = (!s.command.chars().any(char::is_whitespace))
        .then(|| find_executable(&s.command))
        .flatten();
    let Some(exe) = exe else {
        let _ = ws
            .send(Message::Text(not_found_message(&s.command).into()))
            .await;
        close(&mut ws, 1000, "").await;
        return;
    };
    if let Err(e) = session(&mut ws, &s, exe).await {
        let _ = ws
            .send(Message::Text(format!("exec failed: {e}\r\n").into()))
            .await;
    }
    close(&mut ws, 1000, "").await;
}

async fn session(ws: &mut WebSocket, s: &ExecSession, exe: PathBuf) -> std::io::Result<()> {
    let dir = std::env::temp_dir().join(format!("kubeinvoke-emulator-exec-{}", s.id));
    std::fs::create_dir_all(&dir)?;
    let (reader, writer) = std::io::pipe()?;
    let writer2 = writer.try_clone()?;
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &dir)
        .env("TERM", "xterm")
        .env("COLUMNS", s.cols.unwrap_or(80).to_string())
        .env("LINES", s.rows.unwrap_or(24).to_string())
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(writer2)
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    drop(cmd);
    let mut child = spawned?;
    let mut stdin = child.stdin.take();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut pending = Vec::new();
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(bytes) => {
                    pending.extend(onlcr(&bytes));
                    let text = take_utf8(&mut pending);
                    if !text.is_empty() && ws.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            status = child.wait() => {
                let _ = status;
                // Drain what the process wrote, without waiting on background holders of the pipe.
                let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
                while let Ok(Some(bytes)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                    pending.extend(onlcr(&bytes));
                }
                if !pending.is_empty() {
                    let text = String::from_utf8_lossy(&pending).into_owned();
                    let _ = ws.send(Message::Text(text.into())).await;
                }
                break;
            }
            msg = ws.recv() => {
                let data: Vec<u8> = match msg {
                    Some(Ok(Message::Text(t))) => t.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(_)) => continue,
                    _ => {
                        let _ = child.start_kill();
                        break;
                    }
                };
                let mut echo = Vec::new();
                let mut input = Vec::new();
                let mut interrupt = false;
                let mut eof = false;
                for b in data {
                    match b {
                        b'\r' | b'\n' => { echo.extend_from_slice(b"\r\n"); input.push(b'\n'); }
                        0x03 => { echo.extend_from_slice(b"^C\r\n"); interrupt = true; }
                        0x04 => { eof = true; }
                        _ => { echo.push(b); input.push(b); }
                    }
                }
                if !echo.is_empty() {
                    let _ = ws.send(Message::Text(String::from_utf8_lossy(&echo).into_owned().into())).await;
                }
                if let Some(w) = stdin.as_mut()
                    && !input.is_empty()
                    && w.write_all(&input).await.is_err()
                {
                    stdin = None;
                }
                if eof {
                    stdin = None;
                }
                if interrupt {
                    let _ = child.start_kill();
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newline_translation() {
        assert_eq!(onlcr(b"a\nb\n"), b"a\r\nb\r\n");
    }

    #[test]
    fn utf8_split_is_kept_pending() {
        let mut p = "é".as_bytes()[..1].to_vec();
        p.insert(0, b'x');
        assert_eq!(take_utf8(&mut p), "x");
        assert_eq!(p.len(), 1);
        p.push("é".as_bytes()[1]);
        assert_eq!(take_utf8(&mut p), "é");
    }

    #[test]
    fn aci_error_text() {
        let m = not_found_message("ls /");
        assert!(
            m.contains(r#"exec: \"ls /\": executable file not found in $PATH"#),
            "{m}"
        );
        assert!(m.ends_with("\r\n"));
    }
}
