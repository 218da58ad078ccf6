//! kubeinvoke: a Kubernetes operator that reaches private Azure compute through Azure Resource Manager.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
pub mod apiserver;
pub mod azure;
pub mod cli;
pub mod config;
pub mod controllers;
pub mod kubeconfig;
pub mod leader;
pub mod metrics;
pub mod server;
pub mod telemetry;
pub mod text;

#[cfg(test)]
mod parser_props;
