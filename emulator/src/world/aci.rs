//! Container groups in the world: their containers (with logs), state and operating system.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerGroup {
    pub name: String,
    /// ARM tags, shown by GET and the list operations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub containers: Vec<Container>,
    /// `properties.instanceView.state`; exec needs `Running`.
    #[serde(default)]
    pub state: ContainerGroupState,
    #[serde(default)]
    pub os_type: OsType,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerGroupState {
    #[default]
    Running,
    Stopped,
    Pending,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OsType {
    #[default]
    Linux,
    Windows,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    pub name: String,
    #[serde(default)]
    pub logs: Vec<String>,
    /// An exec session's program starts this long (seconds) after the websocket connected (a busy
    /// or cold container): the terminal stays silent meanwhile, input is kept for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_start_seconds: Option<f64>,
}
