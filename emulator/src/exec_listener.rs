//! The ACI exec listener's flags and binding: a second TLS port, on a host name of its own, that
//! serves only the exec websocket, as ACI hands out `wss://<id>.<region>.atlas.cloudapp.azure.com:
//! 19390/execstream/…` rather than a path on ARM's host.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpListener;

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Address of the ACI exec websocket listener; must be a loopback address. Port 0 picks a
    /// free port (real ACI uses TCP 19390).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub exec_listen: SocketAddr,

    /// Host name put in exec `webSocketUri`s; it must resolve to the exec listener (e.g. through
    /// /etc/hosts). The serving certificate is issued for it too.
    #[arg(long, default_value = "localhost")]
    pub exec_host: String,
}

pub struct ExecListener {
    pub listener: TcpListener,
    pub port: u16,
    /// `wss://{exec host}:{port}` (no trailing slash).
    pub base: String,
}

/// Checks the flags: a loopback listen address and a host that is a DNS name or an IP address.
pub fn validate(args: &ExecArgs) -> Result<(), String> {
    if !args.exec_listen.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on non-loopback address {} (use 127.0.0.1)",
            args.exec_listen
        ));
    }
    let host = &args.exec_host;
    let dns_like = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if host.parse::<IpAddr>().is_err() && !dns_like {
        return Err(format!(
            "--exec-host '{host}' is neither a DNS name nor an IP address"
        ));
    }
    Ok(())
}

pub async fn bind(args: &ExecArgs) -> Result<ExecListener, String> {
    let listener = TcpListener::bind(args.exec_listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.exec_listen))?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let host = match args.exec_host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => args.exec_host.to_ascii_lowercase(),
    };
    Ok(ExecListener {
        listener,
        port,
        base: format!("wss://{host}:{port}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: &str, host: &str) -> ExecArgs {
        ExecArgs {
            exec_listen: listen.parse().unwrap(),
            exec_host: host.into(),
        }
    }

    #[test]
    fn hosts_and_addresses() {
        assert!(validate(&args("127.0.0.1:0", "localhost")).is_ok());
        assert!(
            validate(&args(
                "127.0.0.1:0",
                "x1.westeurope.atlas.cloudapp.azure.com"
            ))
            .is_ok()
        );
        assert!(validate(&args("127.0.0.1:0", "::1")).is_ok());
        assert!(validate(&args("0.0.0.0:0", "localhost")).is_err());
        assert!(validate(&args("127.0.0.1:0", "a/b")).is_err());
        assert!(validate(&args("127.0.0.1:0", "")).is_err());
    }
}
