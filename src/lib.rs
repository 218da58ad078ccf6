//! kubeinvoke: a Kubernetes operator that reaches private Azure compute through Azure Resource Manager.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
pub mod kubeconfig;
