//! The messages between the actors, one type per hop, each with its result type beside it.

use std::{collections::BTreeMap, fmt, time::Duration};

use actix::Message;
use brokkr_config::{Change, Outcome};
use serde::Serialize;

use crate::status::WatcherState;

/// One read of the broker's ConfigMap.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigMapVersion {
    /// `data` of the ConfigMap.
    pub data: BTreeMap<String, String>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// `metadata.uid`.
    pub uid: Option<String>,
}

/// Shows the data keys and their sizes, never their text: it may hold a secret.
impl fmt::Debug for ConfigMapVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data: BTreeMap<&str, String> =
            self.data.iter().map(|(k, v)| (k.as_str(), format!("<{} bytes>", v.len()))).collect();
        f.debug_struct("ConfigMapVersion")
            .field("data", &data)
            .field("resource_version", &self.resource_version)
            .field("uid", &self.uid)
            .finish()
    }
}

/// What the API server says about the ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigMapState {
    /// It exists with this content.
    Present(ConfigMapVersion),
    /// It does not exist (never created, or deleted): keep the last good configuration.
    Absent,
}

/// Watcher → debounce: the ConfigMap was listed or changed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ConfigMapObserved {
    /// The state seen.
    pub state: ConfigMapState,
    /// Seen by the initial list of a (re)started watch: forwarded at once, with no quiet window.
    pub initial: bool,
}

/// Debounce → config: apply this state now.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Reload {
    /// The latest state seen.
    pub state: ConfigMapState,
}

/// Why a bounded read of the ConfigMap failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The API server answered with an error, or the connection failed.
    #[error("the API request failed")]
    Api(#[source] kube::Error),
    /// No answer arrived in time (a stalled API server or a silently dead connection).
    #[error("no answer within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// The file the configuration is read from could not be read.
    #[error("the file could not be read")]
    File(#[source] std::io::Error),
}

/// Why a reload requested on demand could not even start.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The ConfigMap (or the file) could not be read in time.
    #[error("failed to read {configmap}")]
    Read {
        /// `ConfigMap namespace/name`, or `file PATH`.
        configmap: String,
        /// The API error or the timeout.
        #[source]
        source: ReadError,
    },
}

/// Admin API or SIGHUP → config: read the ConfigMap now, bypassing the debounce, and report.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<ReloadReport, ReloadError>")]
pub struct ReloadNow;

/// What asked for a reload; logged with each outcome. Its one string form ([`Trigger::as_str`]) is the history's
/// and the audit log's `trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum Trigger {
    /// The bounded read before the broker starts.
    Startup,
    /// A watch event, after the debounce.
    Watch,
    /// The periodic re-read.
    Resync,
    /// `POST /api/v1/admin/config/reload` or SIGHUP: an operator is waiting for the answer.
    OnDemand,
    /// A staged rollout admitted this replica: the version it held is judged again.
    Rollout,
    /// A staged rollout put the last good configuration back.
    Rollback,
}

impl Trigger {
    /// Every trigger, in declaration order.
    pub fn all() -> impl Iterator<Item = Self> {
        <Self as strum::IntoEnumIterator>::iter()
    }

    /// The one string form, as the log, the history and the admin API show it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "start-up",
            Self::Watch => "watch",
            Self::Resync => "resync",
            Self::OnDemand => "manual",
            Self::Rollout => "rollout",
            Self::Rollback => "rollback",
        }
    }
}

impl Serialize for Trigger {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rollout → config: the admission answer changed; judge the version held back again (trigger `rollout`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Option<ReloadReport>")]
pub struct Readmit;

/// Rollout → config: put this document back, bypassing admission and version order (trigger `rollback`).
#[derive(Clone, Message)]
#[rtype(result = "ReloadReport")]
pub struct Rollback {
    /// The last good document's text. May hold a secret's reference, never printed.
    pub text: String,
    /// The resourceVersion the ConfigMap had when this text was in it, shown with the configuration in force.
    pub resource_version: Option<String>,
    /// Why, for the log: `"the traffic gate failed on brokkr-0"`.
    pub reason: String,
}

/// Shows the text's size, never the text.
impl fmt::Debug for Rollback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rollback")
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .field("resource_version", &self.resource_version)
            .field("reason", &self.reason)
            .finish()
    }
}

/// The result of one reload, as the admin API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// `applied`, `unchanged` or `rejected`.
    pub outcome: Outcome,
    /// Dynamic settings that changed, secrets redacted.
    pub changes: Vec<Change>,
    /// Generation in force afterwards.
    pub generation: u64,
    /// Why nothing was applied, when something went wrong.
    pub error: Option<String>,
}

/// Watcher → supervisor: the watch changed state; `Failed` asks for a restart.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct WatcherStatusChanged {
    /// The new state.
    pub state: WatcherState,
}
