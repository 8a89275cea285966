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
    /// Listed; following changes.
    Watching,
    /// The API server returned an error; the supervisor will restart the watch.
    Failed(String),
    /// Waiting out the backoff before the next restart.
    Backoff(String),
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
