//! The watcher's state as the admin API shows it.

use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// Where the watch is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "error", rename_all = "snake_case")]
pub enum WatcherState {
    /// The subsystem is off: nothing watches.
    Disabled,
    /// Listing the ConfigMap (at start and after every restart).
    Listing,
    /// Listed; the watch request is being opened. A watch that fails at once (no `watch` permission, a proxy
    /// that cuts watches, 429 from API Priority and Fairness) never gets further.
    Listed,
    /// The watch has held for a while without an error, or delivered an event: following changes.
    Watching,
    /// The API server returned an error; the supervisor will restart the watch.
    Failed(String),
    /// Waiting out the backoff before the next restart.
    Backoff(String),
}

impl WatcherState {
    /// The state's name as the admin API shows it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Listing => "listing",
            Self::Listed => "listed",
            Self::Watching => "watching",
            Self::Failed(_) => "failed",
            Self::Backoff(_) => "backoff",
        }
    }

    /// The error of a failed watch, if any.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Failed(e) | Self::Backoff(e) => Some(e),
            _ => None,
        }
    }
}

/// Shared, cheap-to-clone view of the watcher for status reporting.
#[derive(Debug, Clone)]
pub struct WatcherStatus {
    inner: Arc<Mutex<(WatcherState, u64)>>,
}

impl WatcherStatus {
    /// A status that starts in `state` with no restarts.
    #[must_use]
    pub fn new(state: WatcherState) -> Self {
        Self { inner: Arc::new(Mutex::new((state, 0))) }
    }

    /// Current state and number of restarts.
    #[must_use]
    pub fn get(&self) -> (WatcherState, u64) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn set(&self, state: WatcherState) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).0 = state;
    }

    pub(crate) fn restarted(&self) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).1 += 1;
    }
}
