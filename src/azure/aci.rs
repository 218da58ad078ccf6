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
    Marker, TailBuffer, find_ready, parse_shell_output, terminal_text, validate_direct_command,
};
use super::client::{ArmClient, ArmRequest, CallContext, expect_json};
use super::error::ArmError;
use super::resource_id::{ContainerGroupId, is_container_name};
use super::secret::Secret;

pub const DEFAULT_API_VERSION: &str = "2025-09-01";
const SESSION_OP: &str = "ContainerExecSession";

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
}

impl fmt::Debug for ExecOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecOutput")
            .field("output", &format_args!("<{} bytes>", self.output.len()))
            .field("exit_code", &self.exit_code)
            .field("truncated", &self.truncated)
            .finish()
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
        const OP: &str = "Containers_ExecuteCommand";
        check_container(container)?;
        let body = json!({ "command": command, "terminalSize": { "rows": terminal.rows, "cols": terminal.cols } });
        let path = format!("{id}/containers/{container}/exec");
        let resp = self
            .arm
            .send(
                ctx,
                ArmRequest::path(OP, Method::POST, path, &self.api_version).json(body),
            )
            .await?;
        let body: ExecResponse = expect_json(&resp, OP)?;
        match (body.web_socket_uri, body.password) {
            (Some(uri), Some(password)) if !uri.is_empty() => {
                check_websocket_uri(&uri, self.arm.cloud(), self.arm.endpoint())?;
                Ok(ExecEndpoint {
                    web_socket_uri: Secret::new(uri),
                    password: Secret::new(password),
                })
            }
            _ => Err(ArmError::invalid_response(
                OP,
                "exec response without webSocketUri and password",
            )),
        }
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
    /// into `shell` with a marker that recovers the exit code.
    pub async fn run(
        &self,
        ctx: &CallContext,
        id: &ContainerGroupId,
        container: &str,
        command: &str,
        shell: Option<&str>,
        limits: &SessionLimits,
    ) -> Result<ExecOutput, ArmError> {
        match shell {
            None => {
                validate_direct_command(command).map_err(ArmError::Validation)?;
                let endpoint = self
                    .exec(ctx, id, container, command, TerminalSize::default())
                    .await?;
                run_direct_session(&endpoint, self.tls.clone(), limits).await
            }
            Some(shell) => {
                validate_direct_command(shell)
                    .map_err(|e| ArmError::Validation(format!("shell: {e}")))?;
                if command.trim().is_empty() {
                    return Err(ArmError::Validation("command is empty".into()));
                }
                let endpoint = self
                    .exec(ctx, id, container, shell, TerminalSize::default())
                    .await?;
                run_shell_session(
                    &endpoint,
                    command,
                    &Marker::random(),
                    self.tls.clone(),
                    limits,
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
    const OP: &str = "Containers_ExecuteCommand";
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
        return Err(ArmError::invalid_response(
            OP,
            format!("webSocketUri host '{host}' is outside the cloud's container instances domain"),
        ));
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
    // ACI authenticates the session by the first text frame.
    send(
        &mut socket,
        endpoint.password.expose().to_string(),
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

async fn send(socket: &mut Socket, text: String, deadline: Instant) -> Result<(), ArmError> {
    tokio::time::timeout_at(deadline, socket.send(Message::text(text)))
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

/// The next chunk of terminal output; `None` when the session is over.
async fn next_chunk(socket: &mut Socket, deadline: Instant) -> Result<Option<Vec<u8>>, ArmError> {
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| ArmError::Timeout {
                operation: SESSION_OP,
                last_error: Some("the exec session did not end before the deadline".into()),
            })?;
        match frame {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(Message::Text(t))) => return Ok(Some(t.as_bytes().to_vec())),
            Some(Ok(Message::Binary(b))) => return Ok(Some(b.to_vec())),
            Some(Ok(_)) => continue,
            // A server that drops the TCP connection instead of closing still ended the session.
            Some(Err(
                tungstenite::Error::ConnectionClosed
                | tungstenite::Error::AlreadyClosed
                | tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                ),
            )) => return Ok(None),
            Some(Err(e)) => {
                return Err(ArmError::Transport {
                    operation: SESSION_OP,
                    message: ws_error(&e),
                });
            }
        }
    }
}

/// Joins a session started for a single executable and reads until the server closes it.
pub async fn run_direct_session(
    endpoint: &ExecEndpoint,
    tls: Arc<rustls::ClientConfig>,
    limits: &SessionLimits,
) -> Result<ExecOutput, ArmError> {
    let mut socket = connect(endpoint, tls, limits.deadline).await?;
    let mut out = TailBuffer::new(limits.max_output_bytes);
    while let Some(chunk) = next_chunk(&mut socket, limits.deadline).await? {
        out.push(&chunk);
    }
    let (raw, truncated) = out.into_string();
    Ok(ExecOutput {
        output: terminal_text(&raw),
        exit_code: None,
        truncated,
    })
}

/// Joins a session started for a shell, types `command` after the shell said ready, and parses
/// the output and exit code out of the terminal stream.
pub async fn run_shell_session(
    endpoint: &ExecEndpoint,
    command: &str,
    marker: &Marker,
    tls: Arc<rustls::ClientConfig>,
    limits: &SessionLimits,
) -> Result<ExecOutput, ArmError> {
    let mut socket = connect(endpoint, tls, limits.deadline).await?;
    send(&mut socket, marker.setup_line(), limits.deadline).await?;
    // Before "ready" only the shell's banner, prompt and our setup echo arrive: keep a bounded window.
    let mut startup = Vec::new();
    let mut out = TailBuffer::new(limits.max_output_bytes);
    loop {
        let Some(chunk) = next_chunk(&mut socket, limits.deadline).await? else {
            let seen = terminal_text(&String::from_utf8_lossy(&startup));
            return Err(ArmError::invalid_response(
                SESSION_OP,
                format!(
                    "the shell ended before it was ready: {}",
                    super::error::snippet(seen.as_bytes())
                ),
            ));
        };
        startup.extend_from_slice(&chunk);
        let text = String::from_utf8_lossy(&startup).into_owned();
        if let Some(at) = find_ready(&text, marker) {
            out.push(&text.as_bytes()[at..]);
            break;
        }
        if startup.len() > 64 * 1024 {
            startup.drain(..startup.len() - 1024);
        }
    }
    send(&mut socket, marker.command_input(command), limits.deadline).await?;
    while let Some(chunk) = next_chunk(&mut socket, limits.deadline).await? {
        out.push(&chunk);
    }
    let (raw, truncated) = out.into_string();
    let parsed = parse_shell_output(&raw, command, marker);
    Ok(ExecOutput {
        output: parsed.output,
        exit_code: parsed.exit_code,
        truncated,
    })
}

#[cfg(test)]
#[path = "aci_tests.rs"]
mod tests;
