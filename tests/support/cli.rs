//! `kubectl invoke` as a pipeline runs it: the plugin binary kubectl would run (the release's, from
//! `dist/`), pointed at the test cluster, its exit status the only thing a script looks at.

use std::path::Path;
use std::process::{Command, Output};

use super::Cluster;

/// `kubectl invoke -n <ns> <args>` in `dir`.
pub fn invoke(ns: &str, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(super::dist::plugin());
    cmd.current_dir(dir)
        .env("KUBECONFIG", &Cluster::get().kubeconfig)
        .args(["-n", ns])
        .args(args);
    cmd
}

/// Runs `kubectl invoke -n <ns> <args>` to its end.
pub fn run(ns: &str, args: &[&str]) -> Output {
    invoke(ns, &std::env::temp_dir(), args)
        .output()
        .expect("run kubectl-invoke")
}

/// The exit status (a signal is a test failure).
pub fn code(out: &Output) -> i32 {
    out.status
        .code()
        .expect("kubectl-invoke exited by a signal")
}

/// Standard error, for assertion messages.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
