//! Azure Container Instances through ARM: exec (a websocket terminal session) and container logs.

use std::fmt;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use super::aci_output::{
    Marker, TailBuffer, find_ready, input_frames, parse_shell_output, terminal_text,
    validate_direct_command, validate_shell_command,
};
use super::client::{ArmClient, ArmRequest, ArmResponse, CallContext, expect_json};
use super::error::ArmError;
use super::resource_id::{ContainerGroupId, is_container_name};
use super::secret::Secret;

pub const DEFAULT_API_VERSION: &str = "2025-09-01";
const SESSION_OP: &str = "ContainerExecSession";
const EXEC_OP: &str = "Containers_ExecuteCommand";

/// Input is typed in messages of at most this many bytes: the service cuts longer ones
/// (azure-sdk-for-js #6487, azure-sdk-for-node #5127), and real clients send keystrokes.
pub const INPUT_FRAME_BYTES: usize = 50;
/// The pause between two input messages (az flushes its keystrokes about every 10 ms).
pub const INPUT_FRAME_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// The PTY size asked for; wide so that output lines are not wrapped by the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub rows: u32,
    pub cols: u32,
}

impl Default for TerminalSize {
    fn default() -> Self {
        Self {
            rows: 200,
            cols: 4000,
        }
    }
}

/// A container group as exec sees it (ACI swagger, `ContainerGroup`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupInfo {
    /// `properties.osType`: `Linux` or `Windows`.
    pub os_type: Option<String>,
    /// `properties.instanceView.state`: `Running`, `Stopped`, `Pending`, `Succeeded`, `Failed`.
    pub state: Option<String>,
    pub containers: Vec<String>,
}

impl GroupInfo {
    pub fn windows(&self) -> bool {
        self.os_type
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("Windows"))
    }

    /// Known not to be running (an unknown state is given the benefit of the doubt).
    pub fn not_running(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case("Running"))
    }
}

#[derive(Deserialize)]
struct GroupBody {
    properties: Option<GroupProperties>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GroupProperties {
    os_type: Option<String>,
    instance_view: Option<GroupInstanceView>,
    #[serde(default)]
    containers: Vec<GroupContainer>,
}

#[derive(Deserialize)]
struct GroupInstanceView {
    state: Option<String>,
}

#[derive(Deserialize)]
struct GroupContainer {
    name: Option<String>,
}

/// Where and how to join an exec session. Both fields are credentials.
#[derive(Clone)]
pub struct ExecEndpoint {
    pub web_socket_uri: Secret,
    pub password: Secret,
}

impl fmt::Debug for ExecEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExecEndpoint(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Output beyond this is dropped from the front (the tail is kept).
    pub max_output_bytes: usize,
    pub deadline: Instant,
}

impl SessionLimits {
    pub fn new(deadline: Instant) -> Self {
        Self {
            max_output_bytes: 512 * 1024,
            deadline,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub output: String,
    /// Known only when the command ran through a shell.
    pub exit_code: Option<i32>,
    pub truncated: bool,
    /// Shell mode only: the session ended after the command was typed but before the shell
    /// reported its status (ACI cuts sessions after about 10-15 minutes with a normal close:
    /// MicrosoftDocs/azure-docs #48526). The output is what came until then. Without a shell
    /// there is no status to wait for, so this stays false.
    pub interrupted: bool,
}

impl fmt::Debug for ExecOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecOutput")
            .field("output", &format_args!("<{} bytes>", self.output.len()))
            .field("exit_code", &self.exit_code)
            .field("truncated", &self.truncated)
            .field("interrupted", &self.interrupted)
            .finish()
    }
}

/// A session that failed, and whether the command may have started before it did.
pub struct SessionError {
    pub error: ArmError,
    /// False when the failure came before the command could start: no token, the exec POST
    /// refused, or (with a shell) before the first byte of the command was typed.
    pub command_sent: bool,
}

impl SessionError {
    fn not_sent(error: ArmError) -> Self {
        Self {
            error,
            command_sent: false,
        }
    }

    fn sent(error: ArmError) -> Self {
        Self {
            error,
            command_sent: true,
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = if self.command_sent {
            "after the command may have started"
        } else {
            "before the command was sent"
        };
        write!(f, "{} ({when})", self.error)
    }
}

// ArmError's own Debug never holds tokens, passwords or the websocket URI.
impl fmt::Debug for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionError")
            .field("error", &self.error)
            .field("command_sent", &self.command_sent)
            .finish()
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecResponse {
    web_socket_uri: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize)]
struct LogsResponse {
    content: Option<String>,
}

/// TLS for the exec websocket: the system roots plus the extra CA (`--ca-file`); never unverified.
pub fn websocket_tls_config(
    extra_ca_pem: Option<&[u8]>,
) -> Result<Arc<rustls::ClientConfig>, ArmError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ArmError::Credential(format!("CA file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ArmError::Credential(format!("CA file: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(ArmError::Credential(
                "CA file holds no PEM certificate".into(),
            ));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ArmError::Credential(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug, Clone)]
pub struct AciClient {
    arm: ArmClient,
    api_version: String,
    tls: Arc<rustls::ClientConfig>,
}

impl AciClient {
    pub fn new(
        arm: ArmClient,
        api_version: Option<String>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            arm,
            api_version: api_version.unwrap_or_else(|| DEFAULT_API_VERSION.to_string()),
            tls,
        }
    }

    /// `containers/{c}/exec`: starts `command` (one executable) on a PTY and returns where to join it.
    pub async fn exec(
        &self,
        ctx: &CallContext,
        id: &ContainerGroupId,
        container: &str,
        command: &str,
        terminal: TerminalSize,
    ) -> Result<ExecEndpoint, ArmError> {
        let resp = self
            .post_exec(ctx, id, container, command, terminal, false)
            .await?;
        self.endpoint_of(&resp)
    }

    /// The exec POST itself: once it may have been processed, ACI has started `command`. With
    /// `once`, an answer that leaves that open is not retried (the command would start twice).
    async fn post_exec(
        &self,
        ctx: &CallContext,
        id: &ContainerGroupId,
        container: &str,
        command: &str,
        terminal: TerminalSize,
        once: bool,
    ) -> Result<ArmResponse, ArmError> {
        check_container(container)?;
        let body = json!({ "command": command, "terminalSize": { "rows": terminal.rows, "cols": terminal.cols } });
        let path = format!("{id}/containers/{container}/exec");
        let mut req = ArmRequest::path(EXEC_OP, Method::POST, path, &self.api_version).json(body);
        if once {
            req = req.not_idempotent();
        }
        self.arm.send(ctx, req).await
    }

    /// Where to join the session the exec POST answered with.
    fn endpoint_of(&self, resp: &ArmResponse) -> Result<ExecEndpoint, ArmError> {
        let body: ExecResponse = expect_json(resp, EXEC_OP)?;
        match (body.web_socket_uri, body.password) {
            (Some(uri), Some(password)) if !uri.is_empty() => {
                check_websocket_uri(&uri, self.arm.cloud(), self.arm.endpoint())?;
                Ok(ExecEndpoint {
                    web_socket_uri: Secret::new(uri),
                    password: Secret::new(password),
                })
            }
            _ => Err(ArmError::invalid_response(
                EXEC_OP,
                "exec response without webSocketUri and password",
            )),
        }
    }

    /// `GET containerGroups/{name}`: what decides whether exec can work (as `az container exec`
    /// reads the group first).
    pub async fn get_group(
        &self,
        ctx: &CallContext,
        id: &ContainerGroupId,
    ) -> Result<GroupInfo, ArmError> {
        const OP: &str = "ContainerGroups_Get";
        let req = ArmRequest::path(OP, Method::GET, id.to_string(), &self.api_version);
        let resp = self.arm.send(ctx, req).await?;
        let body: GroupBody = expect_json(&resp, OP)?;
        let p = body.properties.unwrap_or_default();
        Ok(GroupInfo {
            os_type: p.os_type,
            state: p.instance_view.and_then(|v| v.state),
            containers: p.containers.into_iter().filter_map(|c| c.name).collect(),
        })
    }

    /// `containers/{c}/logs`: the main process's log (not exec output).
    pub async fn logs(
        &self,
        ctx: &CallContext,
        id: &ContainerGroupId,
        container: &str,
        tail: Option<u32>,
        timestamps: bool,
    ) -> Result<String, ArmError> {
        const OP: &str = "Containers_ListLogs";
        check_container(container)?;
        let path = format!("{id}/containers/{container}/logs");
        let mut req = ArmRequest::path(OP, Method::GET, path, &self.api_version);
        if let Some(tail) = tail {
            req = req.query("tail", tail.to_string());
        }
        if timestamps {
            req = req.query("timestamps", "true");
        }
        let resp = self.arm.send(ctx, req).await?;
        let body: LogsResponse = expect_json(&resp, OP)?;
        Ok(body.content.unwrap_or_default())
    }

    /// Runs `command` in `container`: directly when `shell` is `None` (no exit code), else typed
    /// into `shell` with a marker that recovers the exit code. See [`Self::run_session`].
    pub async fn run(
        &self,
        ctx: &CallContext,
        id: &ContainerGroupId,
        container: &str,
        command: &str,
        shell: Option<&str>,
        limits: &SessionLimits,
    ) -> Result<ExecOutput, ArmError> {
        self.run_session(ctx, id, container, command, shell, limits)
            .await
            .map_err(|e| e.error)
    }

    /// Like [`Self::run`], and on failure tells whether the command may have started: directly,
    /// ACI starts the executable as soon as the exec POST is processed; with a shell, the command
    /// starts only once we type it.
    pub async fn run_session(
        &self,
        ctx: &CallContext,
        id: &ContainerGroupId,
        container: &str,
        command: &str,
        shell: Option<&str>,
        limits: &SessionLimits,
    ) -> Result<ExecOutput, SessionError> {
        match shell {
            None => {
                validate_direct_command(command)
                    .map_err(|m| SessionError::not_sent(ArmError::Validation(m)))?;
                let resp = self
                    .post_exec(ctx, id, container, command, TerminalSize::default(), true)
                    .await
                    .map_err(|e| SessionError {
                        command_sent: e.may_have_been_processed(),
                        error: e,
                    })?;
                // ARM answered: ACI has started the executable, whatever follows — even when the
                // answer cannot be used (an endpoint we refuse is never joined, but the command
                // may be running all the same).
                let endpoint = self.endpoint_of(&resp).map_err(|e| {
                    SessionError::sent(match e {
                        ArmError::Validation(m) => ArmError::Validation(format!(
                            "{m}; ACI may already have started the executable"
                        )),
                        other => other,
                    })
                })?;
                run_direct_session(&endpoint, self.tls.clone(), limits)
                    .await
                    .map_err(SessionError::sent)
            }
            Some(shell) => {
                validate_direct_command(shell).map_err(|e| {
                    SessionError::not_sent(ArmError::Validation(format!("shell: {e}")))
                })?;
                validate_shell_command(command)
                    .map_err(|m| SessionError::not_sent(ArmError::Validation(m)))?;
                let endpoint = self
                    .exec(ctx, id, container, shell, TerminalSize::default())
                    .await
                    .map_err(SessionError::not_sent)?;
                run_shell_session(
                    &endpoint,
                    command,
                    &Marker::random(),
                    self.tls.clone(),
                    limits,
                    ctx.fence.as_ref(),
                )
                .await
            }
        }
    }
}

fn check_container(container: &str) -> Result<(), ArmError> {
    if is_container_name(container) {
        Ok(())
    } else {
        Err(ArmError::Validation(format!(
            "container name '{container}' is not valid"
        )))
    }
}

/// The websocket ARM names must be `wss://` (plain `ws://` only while ARM itself is plain HTTP,
/// i.e. in tests) on a host of the cloud's ACI domain (see [`Cloud::websocket_host_allowed`]): the
/// session password and the command are sent there. The URI itself is never quoted (it holds a
/// token).
fn check_websocket_uri(
    uri: &str,
    cloud: &super::cloud::Cloud,
    arm: &reqwest::Url,
) -> Result<(), ArmError> {
    const OP: &str = EXEC_OP;
    let Ok(url) = reqwest::Url::parse(uri) else {
        return Err(ArmError::invalid_response(OP, "webSocketUri is not a URL"));
    };
    let secure = url.scheme() == "wss" || (url.scheme() == "ws" && arm.scheme() == "http");
    if !secure {
        return Err(ArmError::invalid_response(
            OP,
            format!("webSocketUri uses '{}': only wss is accepted", url.scheme()),
        ));
    }
    let host = url.host_str().unwrap_or_default();
    if !cloud.websocket_host_allowed(host) {
        // The same answer would be refused again: a verdict, not a transient failure.
        return Err(ArmError::Validation(format!(
            "ARM's exec answer names websocket host '{host}', which is not an ACI exec host of {cloud} \
             (for a custom cloud, list it in --aci-exec-hosts); nothing was sent to it"
        )));
    }
    Ok(())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(
    endpoint: &ExecEndpoint,
    tls: Arc<rustls::ClientConfig>,
    deadline: Instant,
) -> Result<Socket, ArmError> {
    let uri = endpoint.web_socket_uri.expose();
    if !(uri.starts_with("wss://") || uri.starts_with("ws://")) {
        return Err(ArmError::invalid_response(
            SESSION_OP,
            "webSocketUri is not a ws(s) URL",
        ));
    }
    let connecting = connect_async_tls_with_config(uri, None, true, Some(Connector::Rustls(tls)));
    let (mut socket, _) = tokio::time::timeout_at(deadline, connecting)
        .await
        .map_err(|_| ArmError::Timeout {
            operation: SESSION_OP,
            last_error: Some("connecting the exec websocket".into()),
        })?
        .map_err(|e| ArmError::Transport {
            operation: SESSION_OP,
            message: ws_error(&e),
        })?;
    // ACI authenticates the session by the first text frame. (It may already have sent an empty
    // message on connect, azure-cli PR #16000: that one arrives as an empty chunk, which is harmless.)
    send(
        &mut socket,
        Message::text(endpoint.password.expose().to_string()),
        deadline,
    )
    .await?;
    Ok(socket)
}

/// tungstenite errors can quote the request (with its URL); keep only the kind.
fn ws_error(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(resp) => {
            format!("websocket handshake refused with HTTP {}", resp.status())
        }
        tungstenite::Error::Url(_) => "invalid websocket URL".to_string(),
        other => other.to_string(),
    }
}

async fn send(socket: &mut Socket, message: Message, deadline: Instant) -> Result<(), ArmError> {
    tokio::time::timeout_at(deadline, socket.send(message))
        .await
        .map_err(|_| ArmError::Timeout {
            operation: SESSION_OP,
            last_error: Some("sending to the exec websocket".into()),
        })?
        .map_err(|e| ArmError::Transport {
            operation: SESSION_OP,
            message: ws_error(&e),
        })
}

/// How often a quiet session is pinged: Azure's load balancers drop TCP flows idle for 4 minutes
/// by default, and a command may print nothing for longer than that.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);

/// What the websocket gave: terminal output, the end of the session, or a connection that died.
#[derive(Debug, PartialEq, Eq)]
enum Chunk {
    Output(Vec<u8>),
    /// The server closed the session (a close frame, then the end of the stream).
    Closed,
    /// The connection ended without a close frame: the session may still be running.
    Lost,
}

/// The next chunk of terminal output, pinging the server while the session is quiet.
async fn next_chunk(socket: &mut Socket, deadline: Instant) -> Result<Chunk, ArmError> {
    loop {
        let wake = deadline.min(Instant::now() + KEEPALIVE);
        let Ok(frame) = tokio::time::timeout_at(wake, socket.next()).await else {
            if wake < deadline {
                send(socket, Message::Ping(Vec::new().into()), deadline).await?;
                continue;
            }
            return Err(ArmError::Timeout {
                operation: SESSION_OP,
                last_error: Some("the exec session did not end before the deadline".into()),
            });
        };
        match frame {
            None | Some(Ok(Message::Close(_))) => return Ok(Chunk::Closed),
            Some(Ok(Message::Text(t))) => return Ok(Chunk::Output(t.as_bytes().to_vec())),
            Some(Ok(Message::Binary(b))) => return Ok(Chunk::Output(b.to_vec())),
            Some(Ok(_)) => continue,
            // After a close handshake: the session ended.
            Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
                return Ok(Chunk::Closed);
            }
            // The TCP connection ended without a close frame (a network path dropped it).
            Some(Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ))) => return Ok(Chunk::Lost),
            Some(Err(tungstenite::Error::Io(_))) => return Ok(Chunk::Lost),
            Some(Err(e)) => {
                return Err(ArmError::Transport {
                    operation: SESSION_OP,
                    message: ws_error(&e),
                });
            }
        }
    }
}

/// How typing went: every frame went out, or the session ended first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Typed {
    All,
    SessionEnded,
}

/// Types `text` as a keyboard would: binary messages of at most [`INPUT_FRAME_BYTES`] with
/// [`INPUT_FRAME_PAUSE`] between them, handing what the terminal shows meanwhile to `output` (so a
/// chatty command never stalls the socket while we type). `started` turns true with the first
/// message sent.
async fn type_text(
    socket: &mut Socket,
    text: &str,
    deadline: Instant,
    started: &mut bool,
    output: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<Typed, ArmError> {
    let mut next_at = Instant::now();
    for frame in input_frames(text, INPUT_FRAME_BYTES) {
        // The pause between keystroke batches is pacing, not a wait for anything.
        loop {
            tokio::select! {
                chunk = next_chunk(socket, deadline) => match chunk? {
                    Chunk::Output(bytes) => output(&bytes),
                    Chunk::Closed | Chunk::Lost => return Ok(Typed::SessionEnded),
                },
                _ = tokio::time::sleep_until(next_at) => break,
            }
        }
        send(socket, Message::binary(frame.as_bytes().to_vec()), deadline).await?;
        *started = true;
        next_at = Instant::now() + INPUT_FRAME_PAUSE;
    }
    Ok(Typed::All)
}

/// Joins a session started for a single executable and reads until the server closes it.
pub async fn run_direct_session(
    endpoint: &ExecEndpoint,
    tls: Arc<rustls::ClientConfig>,
    limits: &SessionLimits,
) -> Result<ExecOutput, ArmError> {
    let mut socket = connect(endpoint, tls, limits.deadline).await?;
    let mut out = TailBuffer::new(limits.max_output_bytes);
    let lost = loop {
        match next_chunk(&mut socket, limits.deadline).await? {
            Chunk::Output(bytes) => out.push(&bytes),
            Chunk::Closed => break false,
            // Without a close frame nothing says the executable ended: cut short, not done.
            Chunk::Lost => break true,
        }
    };
    let (raw, truncated) = out.into_string();
    Ok(ExecOutput {
        output: terminal_text(&raw),
        exit_code: None,
        truncated,
        interrupted: lost,
    })
}

/// Joins a session started for a shell, types `command` after the shell said ready, and parses
/// the output and exit code out of the terminal stream. A failure says whether any of the command
/// had been typed. `fence` is asked right before the command is typed — the moment it starts — so
/// a replica that lost the leader Lease while the shell came up types nothing.
pub async fn run_shell_session(
    endpoint: &ExecEndpoint,
    command: &str,
    marker: &Marker,
    tls: Arc<rustls::ClientConfig>,
    limits: &SessionLimits,
    fence: Option<&super::Fence>,
) -> Result<ExecOutput, SessionError> {
    let deadline = limits.deadline;
    let mut socket = connect(endpoint, tls, deadline)
        .await
        .map_err(SessionError::not_sent)?;
    // Before "ready" only the shell's banner, prompt and our setup echo arrive: keep a bounded window.
    let mut startup = Vec::new();
    let keep = |startup: &mut Vec<u8>, bytes: &[u8]| {
        startup.extend_from_slice(bytes);
        if startup.len() > 64 * 1024 {
            startup.drain(..startup.len() - 1024);
        }
    };
    let ended_early = |startup: &[u8]| {
        let seen = terminal_text(&String::from_utf8_lossy(startup));
        SessionError::not_sent(ArmError::invalid_response(
            SESSION_OP,
            format!(
                "the shell ended before it was ready: {}",
                super::error::snippet(seen.as_bytes())
            ),
        ))
    };
    let mut setup_typed = false;
    let typed = type_text(
        &mut socket,
        &marker.setup_line(),
        deadline,
        &mut setup_typed,
        &mut |bytes| keep(&mut startup, bytes),
    )
    .await
    .map_err(SessionError::not_sent)?;
    if typed == Typed::SessionEnded {
        return Err(ended_early(&startup));
    }
    let mut out = TailBuffer::new(limits.max_output_bytes);
    loop {
        let text = String::from_utf8_lossy(&startup).into_owned();
        if let Some(at) = find_ready(&text, marker) {
            out.push(&text.as_bytes()[at..]);
            break;
        }
        match next_chunk(&mut socket, deadline)
            .await
            .map_err(SessionError::not_sent)?
        {
            Chunk::Output(chunk) => keep(&mut startup, &chunk),
            Chunk::Closed | Chunk::Lost => return Err(ended_early(&startup)),
        }
    }
    if fence.is_some_and(|holds| !holds()) {
        return Err(SessionError::not_sent(ArmError::Fenced {
            operation: SESSION_OP,
        }));
    }
    let mut started = false;
    let typed = type_text(
        &mut socket,
        &marker.command_input(command),
        deadline,
        &mut started,
        &mut |bytes| out.push(bytes),
    )
    .await
    .map_err(|error| SessionError {
        error,
        command_sent: started,
    })?;
    if typed == Typed::SessionEnded && !started {
        return Err(SessionError::not_sent(ArmError::invalid_response(
            SESSION_OP,
            "the shell ended before the command was typed",
        )));
    }
    if typed == Typed::All {
        loop {
            match next_chunk(&mut socket, deadline).await {
                Ok(Chunk::Output(chunk)) => out.push(&chunk),
                // Without the status line the parse below reports the run as interrupted.
                Ok(Chunk::Closed | Chunk::Lost) => break,
                Err(error) => return Err(SessionError::sent(error)),
            }
        }
    }
    let (raw, truncated) = out.into_string();
    let parsed = parse_shell_output(&raw, command, marker);
    Ok(ExecOutput {
        output: parsed.output,
        exit_code: parsed.exit_code,
        truncated,
        // The stream ended without the status line: cut short (e.g. ACI's session cap), not done.
        interrupted: !parsed.status_seen,
    })
}

#[cfg(test)]
#[path = "aci_tests.rs"]
mod tests;
