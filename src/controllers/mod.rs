//! Controllers: glue between the Kubernetes API and ARM; they own status.

pub mod conditions;
pub mod reason;
pub mod references;
