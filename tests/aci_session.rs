//! The operator's ACI exec client against the emulator's real PTY sessions: a command typed into
//! bash, dash and busybox sh comes back as clean output with its exit code, and a session cut short
//! is reported as interrupted. Needs only the emulator binary (no cluster).

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kubeinvoke::azure::aci::{AciClient, ExecOutput, SessionLimits, websocket_tls_config};
use kubeinvoke::azure::client::NoopObserver;
use kubeinvoke::azure::{
    ArmClient, ArmClientConfig, CallContext, Cloud, ContainerGroupId, Principal,
};
use support::emulator::{CLIENT_ID, CLIENT_SECRET, Emulator, SUBSCRIPTION, TENANT, group_id};

/// One container group `cg1` with a container `app`; nothing that needs a cluster.
fn world() -> String {
    format!(
        r#"tenants: [{{id: "{TENANT}"}}]
principals:
  - {{tenantId: "{TENANT}", clientId: "{CLIENT_ID}", clientSecret: "{CLIENT_SECRET}"}}
subscriptions:
  - id: "{SUBSCRIPTION}"
    tenantId: "{TENANT}"
    resourceGroups:
      - name: rg1
        containerGroups:
          - name: cg1
            containers: [{{name: app, logs: ["ready"]}}]
"#
    )
}

/// An ARM token from the emulator's Entra ID, handed out as is.
#[derive(Debug)]
struct EmulatorToken(String);

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for EmulatorToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Ok(azure_core::credentials::AccessToken {
            token: azure_core::credentials::Secret::new(self.0.clone()),
            expires_on: azure_core::time::OffsetDateTime::now_utc()
                + azure_core::time::Duration::hours(1),
        })
    }
}

struct Session {
    emulator: Emulator,
    aci: AciClient,
    token: String,
}

impl Session {
    async fn start(args: &[&str]) -> Session {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let emulator = Emulator::start(&world(), args);
        let ca = std::fs::read(&emulator.ca_file).expect("emulator CA");
        let mut config = ArmClientConfig::new(
            Cloud::custom(&emulator.arm, &emulator.arm)
                .and_then(|c| c.with_exec_hosts(std::slice::from_ref(&emulator.exec_host)))
                .expect("custom cloud"),
        );
        config.extra_ca_pem = Some(ca.clone());
        let arm = ArmClient::new(&config, Arc::new(NoopObserver)).expect("ARM client");
        let aci = AciClient::new(arm, None, websocket_tls_config(Some(&ca)).expect("TLS"));
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
            .build()
            .expect("http client");
        let mut form = reqwest::Url::parse("http://form.invalid/").expect("URL");
        form.query_pairs_mut().extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", "https://management.azure.com/.default"),
        ]);
        let body: serde_json::Value = http
            .post(format!("{}/{TENANT}/oauth2/v2.0/token", emulator.arm))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.query().unwrap_or_default().to_string())
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token JSON");
        let token = body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        Session {
            emulator,
            aci,
            token,
        }
    }

    async fn run(&self, command: &str, shell: &str, within: Duration) -> ExecOutput {
        let deadline = tokio::time::Instant::now() + within;
        let ctx = CallContext {
            credential: Arc::new(EmulatorToken(self.token.clone())),
            principal: Principal {
                tenant_id: TENANT.into(),
                client_id: CLIENT_ID.into(),
            },
            subscription: SUBSCRIPTION.into(),
            correlation_id: uuid::Uuid::new_v4().to_string(),
            deadline,
            fence: None,
            forget_credential: None,
            party: "aci-session".into(),
            order: None,
        };
        let id: ContainerGroupId = group_id("cg1").parse().expect("container group id");
        self.aci
            .run_session(
                &ctx,
                &id,
                "app",
                command,
                Some(shell),
                &SessionLimits::new(deadline),
            )
            .await
            .unwrap_or_else(|e| panic!("{shell}: {e}\n{}", self.emulator.log()))
    }
}

/// Multi-line, multi-byte UTF-8 on both streams, and a non-zero exit from inside the command.
const SCRIPT: &str =
    "for w in héllo wörld; do\n  echo \"$w ✓ 日本\"\ndone\necho to-stderr ünïcode >&2\nexit 3";
const SCRIPT_OUTPUT: &str = "héllo ✓ 日本\nwörld ✓ 日本\nto-stderr ünïcode\n";

async fn shell_runs_the_script(shell: &str) {
    let session = Session::start(&[]).await;
    let out = session.run(SCRIPT, shell, Duration::from_secs(30)).await;
    assert_eq!(out.output, SCRIPT_OUTPUT, "{shell}: {out:?}");
    assert_eq!(out.exit_code, Some(3), "{shell}");
    assert!(!out.interrupted && !out.truncated, "{shell}: {out:?}");
    let ok = session
        .run("cd /; pwd", shell, Duration::from_secs(30))
        .await;
    assert_eq!(
        (ok.output.as_str(), ok.exit_code),
        ("/\n", Some(0)),
        "{shell}"
    );
}

#[tokio::test]
async fn bash_runs_a_multi_line_utf8_script_with_its_exit_code() {
    shell_runs_the_script("/bin/bash").await;
}

#[tokio::test]
async fn dash_runs_a_multi_line_utf8_script_with_its_exit_code() {
    shell_runs_the_script("/bin/dash").await;
}

/// As in Alpine-style images, `sh` is a link to busybox; ACI execs it without arguments, so the
/// link's name is what makes busybox act as its shell.
#[tokio::test]
async fn busybox_sh_runs_a_multi_line_utf8_script_with_its_exit_code() {
    assert!(
        std::path::Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing: install busybox-static (make prereqs does)"
    );
    let dir = support::scratch_dir("busybox");
    let sh: PathBuf = dir.join("sh");
    std::os::unix::fs::symlink("/bin/busybox", &sh).expect("symlink sh -> busybox");
    shell_runs_the_script(sh.to_str().expect("UTF-8 path")).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_session_cut_by_the_service_cap_is_interrupted() {
    let session = Session::start(&["--aci-session-cap-seconds", "2"]).await;
    let out = session
        .run(
            "echo started; sleep 20; echo never",
            "/bin/sh",
            Duration::from_secs(30),
        )
        .await;
    assert!(out.interrupted, "{out:?}");
    assert_eq!(out.exit_code, None);
    assert_eq!(out.output, "started\n");
}
