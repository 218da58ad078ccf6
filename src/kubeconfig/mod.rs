//! Kubeconfigs fetched through ARM: parsing and validation, expiry, the exec-to-token swap, the
//! Secret layouts of each consumer (kubectl, Flux, Cluster API, Argo CD), content hashing and
//! refresh scheduling. Pure: no I/O, no Kubernetes or Azure calls.
//!
//! The controller's flow: [`parse_credentials`] → (with `authentication: Token`, when
//! [`ParsedKubeconfig::has_exec_user`] or [`ParsedKubeconfig::has_auth_provider`])
//! [`ParsedKubeconfig::swap_exec_for_token`] → [`render`] → compare [`content_hash`] with
//! `status.contentHash` → schedule [`next_refresh`] from [`ParsedKubeconfig::expiry`].

pub(crate) mod argocd;
mod error;
mod expiry;
mod model;
mod parse;
mod refresh;
mod render;
mod sensitive;
#[cfg(test)]
mod testdata;
mod trust;

pub use error::{KubeconfigError, REASON_INVALID_KUBECONFIG, REASON_INVALID_SPEC};
pub use expiry::{certificate_not_after, jwt_expiry};
pub use model::{
    Cluster, Context, Exec, ExecEnv, Extra, Kubeconfig, NamedCluster, NamedContext, NamedUser, User,
};
pub use parse::{ParsedKubeconfig, parse_credentials};
pub use refresh::{MIN_REFRESH_DELAY, MIN_REFRESH_INTERVAL, next_refresh, parse_refresh_interval};
pub use render::{
    ARGOCD_SECRET_TYPE_LABEL, CLUSTER_API_CLUSTER_NAME_LABEL, CLUSTER_API_SECRET_TYPE,
    DEFAULT_KUBECONFIG_KEY, MANAGED_BY, MANAGED_BY_LABEL, RenderContext, RenderedSecret, VALUE_KEY,
    content_hash, render,
};
pub use sensitive::{SecretBytes, SecretString};
