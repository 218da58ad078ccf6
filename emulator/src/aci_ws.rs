//! The ACI exec websocket: an empty message on connect, the password first, then a terminal stream
//! to one executable started without arguments on a real PTY (see `aci_pty`). The socket closes
//! with 1000 when the process exits — or when the session cap passes; no exit code either way.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::aci_pty::PtyProcess;
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
    /// `execStartSeconds`: how long the program takes to start once the password came.
    #[serde(skip)]
    pub start_delay: Option<Duration>,
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

/// `GET /execstream/{session}` on the exec listener (websocket upgrade).
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

/// The real service's per-message input limit: bytes beyond `limit` are dropped (a message of
/// more than 50 characters is cut: azure-sdk-for-js #6487, azure-sdk-for-node #5127).
fn cut_input(mut data: Vec<u8>, limit: usize, session: &str) -> Vec<u8> {
    if data.len() > limit {
        // Lengths only: input is what the user typed and may hold secrets.
        tracing::warn!(
            session,
            length = data.len(),
            limit,
            "exec input message longer than the limit: the bytes beyond it are dropped"
        );
        data.truncate(limit);
    }
    data
}

fn terminal_size(v: Option<u32>, default: u16) -> u16 {
    v.map_or(default, |v| u16::try_from(v).unwrap_or(u16::MAX))
}

async fn run(mut ws: WebSocket, state: Shared, s: ExecSession) {
    // The service sends one empty message as soon as the websocket is open, before it has read
    // the password (azure-cli PR #16000: az took it for the end of the stream). Text, like the
    // rest of what this emulator sends.
    if ws.send(Message::Text("".into())).await.is_err() {
        return;
    }
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
    if let Some(delay) = s.start_delay {
        // What the client types meanwhile waits in the websocket for the program.
        tokio::time::sleep(delay).await;
    }
    let dir = std::env::temp_dir().join(format!("kubeinvoke-emulator-exec-{}", s.id));
    let end = session(&mut ws, &state, &s, &exe, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    match end {
        // Dropped like an idle flow on a load balancer: no close frame, the TCP connection ends.
        Ok(End::Dropped) => drop(ws),
        Ok(_) => close(&mut ws, 1000, "").await,
        Err(e) => {
            let _ = ws
                .send(Message::Text(format!("exec failed: {e}\r\n").into()))
                .await;
            close(&mut ws, 1000, "").await;
        }
    }
}

/// Why a session loop ended.
enum End {
    /// The process exited (or nothing holds its terminal any more).
    Exited,
    /// The client left: the process is killed.
    ClientGone,
    /// The session cap passed: the process is killed and the socket closed normally.
    Capped,
    /// Nothing came from the client for `--aci-idle-drop-seconds`: the connection is dropped
    /// without a close frame.
    Dropped,
}

async fn send_text(ws: &mut WebSocket, pending: &mut Vec<u8>) -> bool {
    let text = take_utf8(pending);
    text.is_empty() || ws.send(Message::Text(text.into())).await.is_ok()
}

async fn session(
    ws: &mut WebSocket,
    state: &Shared,
    s: &ExecSession,
    exe: &std::path::Path,
    dir: &std::path::Path,
) -> std::io::Result<End> {
    std::fs::create_dir_all(dir)?;
    let rows = terminal_size(s.rows, 24);
    let cols = terminal_size(s.cols, 80);
    let mut p = PtyProcess::spawn(exe, dir, rows, cols)?;
    let limit = state.settings.aci_input_limit;
    let cap = state.settings.aci_session_cap;
    let capped = async {
        match cap {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(capped);
    let idle_limit = state.settings.aci_idle_drop;
    let mut heard = tokio::time::Instant::now();
    let mut pending = Vec::new();
    let end = loop {
        let idle = async move {
            match idle_limit {
                Some(d) => tokio::time::sleep_until(heard + d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            chunk = p.output.recv() => match chunk {
                Some(bytes) => {
                    pending.extend_from_slice(&bytes);
                    if !send_text(ws, &mut pending).await {
                        break End::ClientGone;
                    }
                }
                None => break End::Exited,
            },
            _ = p.child.wait() => break End::Exited,
            msg = ws.recv() => {
                // Any frame from the client, pings included, keeps the flow alive.
                heard = tokio::time::Instant::now();
                let data: Vec<u8> = match msg {
                    Some(Ok(Message::Text(t))) => t.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break End::ClientGone,
                    Some(Ok(_)) => continue,
                };
                if !data.is_empty() {
                    p.type_in(cut_input(data, limit, &s.id));
                }
            }
            _ = &mut capped => break End::Capped,
            _ = idle => {
                tracing::info!(session = %s.id, "no frame from the client for the idle limit; dropping the connection without a close frame");
                break End::Dropped;
            }
        }
    };
    match end {
        End::Exited => {
            // What the process wrote last, without waiting long on background holders of the terminal.
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while let Ok(Some(bytes)) = tokio::time::timeout_at(deadline, p.output.recv()).await {
                pending.extend_from_slice(&bytes);
            }
            if !pending.is_empty() {
                let text = String::from_utf8_lossy(&pending).into_owned();
                let _ = ws.send(Message::Text(text.into())).await;
            }
        }
        End::Capped => {
            // ACI cuts exec sessions after about 10-15 minutes, whatever runs (MicrosoftDocs/
            // azure-docs #48526); the close is a normal one, so a client cannot tell it from an exit.
            tracing::info!(session = %s.id, cap_seconds = cap.map(|d| d.as_secs()), "exec session reached its time cap; its process is killed");
        }
        End::ClientGone | End::Dropped => {}
    }
    let _ = p.child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(2), p.child.wait()).await;
    // Dropping the terminal's master side hangs it up: what still runs in the session gets SIGHUP.
    drop(p);
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_beyond_the_limit_is_dropped() {
        assert_eq!(cut_input(b"0123456789".to_vec(), 4, "s"), b"0123");
        assert_eq!(cut_input(b"0123".to_vec(), 4, "s"), b"0123");
        assert_eq!(terminal_size(Some(70_000), 80), u16::MAX);
        assert_eq!(terminal_size(None, 80), 80);
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
