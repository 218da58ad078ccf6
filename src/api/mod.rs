//! The CRD types of kubeinvoke (`kubeinvoke.io/v1alpha1`): plain data, no I/O.

pub mod common;
pub mod crds;
pub mod kubeconfig_export;
pub mod kubeconfig_export_set;
pub mod reference;
pub mod remote_command;
pub mod remote_command_set;

pub use common::{CredentialRef, Phase};
pub use kubeconfig_export::{KubeconfigExport, KubeconfigExportSpec, KubeconfigExportStatus};
pub use kubeconfig_export_set::{
    KubeconfigExportSet, KubeconfigExportSetSpec, KubeconfigExportSetStatus,
};
pub use remote_command::{RemoteCommand, RemoteCommandSpec, RemoteCommandStatus};
pub use remote_command_set::{RemoteCommandSet, RemoteCommandSetSpec, RemoteCommandSetStatus};

/// API group of every kubeinvoke resource.
pub const GROUP: &str = "kubeinvoke.io";
/// API version of every kubeinvoke resource.
pub const VERSION: &str = "v1alpha1";
