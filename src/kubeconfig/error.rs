//! Why a kubeconfig could not be read or exported. Messages name fields and positions, never
//! kubeconfig content.

use crate::api::kubeconfig_export::SecretFormat;

/// Status reason for content ARM returned that is not a usable kubeconfig.
pub const REASON_INVALID_KUBECONFIG: &str = "InvalidKubeconfig";
/// Status reason for a spec that cannot be satisfied as written.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";

/// Errors of parsing, rendering and scheduling kubeconfig exports.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KubeconfigError {
    /// ARM returned no kubeconfig at all.
    #[error("the ARM response contains no kubeconfig")]
    Empty,
    /// The kubeconfig value is not base64.
    #[error("kubeconfig {credential:?} is not valid base64")]
    InvalidBase64 { credential: String },
    /// The decoded kubeconfig is not YAML (or not UTF-8).
    #[error("kubeconfig {credential:?} is not valid YAML{}", position(*line, *column))]
    InvalidYaml {
        credential: String,
        line: Option<u64>,
        column: Option<u64>,
    },
    /// YAML, but not shaped like a kubeconfig (e.g. a list, or a field of the wrong type).
    #[error("kubeconfig {credential:?} is YAML but not a kubeconfig: {what}")]
    NotKubeconfig {
        credential: String,
        what: &'static str,
    },
    #[error("kubeconfig {credential:?} has no clusters")]
    NoClusters { credential: String },
    #[error("kubeconfig {credential:?} has no contexts")]
    NoContexts { credential: String },
    #[error("kubeconfig {credential:?} has no users")]
    NoUsers { credential: String },
    /// `current-context`, or the cluster or user a context names, does not exist.
    #[error("kubeconfig {credential:?}: {kind} {name:?} is not defined")]
    UnresolvedContext {
        credential: String,
        /// `context`, `cluster` or `user`.
        kind: &'static str,
        name: String,
    },
    /// A `*-data` field is not base64.
    #[error("kubeconfig {credential:?}: field {field:?} is not valid base64")]
    InvalidField {
        credential: String,
        field: &'static str,
    },
    /// Something no real AKS or AKS Arc kubeconfig holds (see `trust.rs`): named, never quoted.
    #[error("kubeconfig {credential:?} holds what no AKS kubeconfig does, refused: {what}")]
    Untrusted { credential: String, what: String },
    /// The current context's cluster has no `server`.
    #[error("kubeconfig {credential:?}: cluster {cluster:?} has no server")]
    NoServer { credential: String, cluster: String },
    /// The format needs everything inside the Secret, but the kubeconfig points at a file.
    #[error(
        "the {format:?} format needs a self-contained kubeconfig, but field {field:?} of {entry:?} is a file path"
    )]
    NotSelfContained {
        format: SecretFormat,
        entry: String,
        field: &'static str,
    },
    /// The consumer cannot run the kubeconfig's credential plugin.
    #[error("{}", exec_unsupported_message(*format, plugin, *swapped_requested))]
    ExecUserUnsupported {
        format: SecretFormat,
        /// `exec` (e.g. kubelogin) or `auth-provider`.
        plugin: String,
        /// `authentication: Token` was set, but the plugin was not swapped for a token.
        swapped_requested: bool,
    },
    /// The cluster name cannot be a label value.
    #[error(
        "cluster name {name:?} is not a valid label value (at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends)"
    )]
    InvalidClusterName { name: String },
    /// `refreshInterval` is not a duration of at least one minute.
    #[error("refreshInterval {value:?} is invalid: {why}")]
    InvalidRefreshInterval { value: String, why: &'static str },
    /// Serializing the rendered Secret failed (a bug, not bad input).
    #[error("could not serialize the {what}")]
    Serialize { what: &'static str },
}

impl KubeconfigError {
    /// The status `reason` for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ExecUserUnsupported { .. }
            | Self::InvalidRefreshInterval { .. }
            | Self::InvalidClusterName { .. } => REASON_INVALID_SPEC,
            _ => REASON_INVALID_KUBECONFIG,
        }
    }

    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::InvalidBase64 { .. } => "invalid_base64",
            Self::InvalidYaml { .. } => "invalid_yaml",
            Self::NotKubeconfig { .. } => "not_kubeconfig",
            Self::NoClusters { .. } => "no_clusters",
            Self::NoContexts { .. } => "no_contexts",
            Self::NoUsers { .. } => "no_users",
            Self::UnresolvedContext { .. } => "unresolved_context",
            Self::InvalidField { .. } => "invalid_field",
            Self::NoServer { .. } => "no_server",
            Self::Untrusted { .. } => "untrusted",
            Self::NotSelfContained { .. } => "not_self_contained",
            Self::ExecUserUnsupported { .. } => "exec_user_unsupported",
            Self::InvalidClusterName { .. } => "invalid_cluster_name",
            Self::InvalidRefreshInterval { .. } => "invalid_refresh_interval",
            Self::Serialize { .. } => "serialize",
        }
    }
}

fn position(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

fn exec_unsupported_message(format: SecretFormat, plugin: &str, swapped_requested: bool) -> String {
    let consumer = match format {
        SecretFormat::Flux => "Flux",
        SecretFormat::ArgoCd => "this Argo CD cluster Secret",
        SecretFormat::ClusterApi => "Cluster API",
        SecretFormat::Kubeconfig => "this Secret",
    };
    if swapped_requested {
        format!(
            "the kubeconfig still has an {plugin} user although authentication is Token; \
             {consumer} cannot run it (the token swap did not happen)"
        )
    } else {
        format!(
            "the kubeconfig authenticates with an {plugin} user (kubelogin / Azure auth \
             provider), which {consumer} cannot run; set spec.authentication: Token so the \
             operator replaces it with a bearer token it refreshes"
        )
    }
}
