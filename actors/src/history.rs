//! The last reloads, newest last, bounded by the reload section's `history`: what the admin API's history serves
//! and what a replica publishes about itself (see `pod_status`).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::SystemTime,
};

use brokkr_config::{Change, Outcome, text::clip};
use serde::{Serialize, Serializer};
use tokio::sync::watch;

use crate::messages::Trigger;

/// The most bytes of a changed value a record keeps, old and new each: a history of 100 records of a dozen changes
/// stays under a megabyte, and so does an answer of the admin API.
pub const HISTORY_VALUE_LIMIT: usize = 256;

/// One reload as the history keeps it; values are redacted as the audit lines are, and cut to
/// [`HISTORY_VALUE_LIMIT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadRecord {
    /// The generation in force after it.
    pub generation: u64,
    /// The ConfigMap's resourceVersion that was judged; `None` for a start-up without a ConfigMap.
    pub resource_version: Option<String>,
    /// Hash of the live settings in force after it.
    pub hash: String,
    /// `start-up`, `watch`, `resync` or `manual`.
    pub trigger: Trigger,
    /// `applied`, `unchanged` or `rejected`; at start-up also `unread` (the ConfigMap was absent or could not be
    /// read in time: the broker runs on the file and the environment until the watch reads it).
    pub outcome: Outcome,
    /// The settings that changed, secrets redacted.
    pub changes: Vec<Change>,
    /// Restart-only keys whose new value waits for the next start.
    pub restart_required: Vec<String>,
    /// Why it was rejected.
    pub error: Option<String>,
    /// When.
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
}

fn rfc3339<S: Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*at))
}

impl ReloadRecord {
    /// A record of `outcome` by `trigger`, its values cut to [`HISTORY_VALUE_LIMIT`] bytes.
    #[must_use]
    pub fn new(trigger: Trigger, outcome: Outcome, mut changes: Vec<Change>) -> Self {
        for change in &mut changes {
            change.old = clip(&change.old, HISTORY_VALUE_LIMIT).into_owned();
            change.new = clip(&change.new, HISTORY_VALUE_LIMIT).into_owned();
        }
        Self {
            generation: 0,
            resource_version: None,
            hash: String::new(),
            trigger,
            outcome,
            changes,
            restart_required: Vec::new(),
            error: None,
            at: SystemTime::now(),
        }
    }

    /// Whether it says nothing the record before it did not: a resync or a re-list that found the version in
    /// force, or the rejected one again. A manual reload is always kept: an operator asked for it.
    fn repeats(&self, before: &Self) -> bool {
        if self.trigger == Trigger::OnDemand {
            return false;
        }
        // Applied and then unchanged is the same state: that version in force.
        let state = |r: &Self| match r.outcome {
            Outcome::Applied | Outcome::Unchanged => Outcome::Applied,
            Outcome::Rejected | Outcome::Unread | Outcome::Held => r.outcome,
        };
        self.changes.is_empty()
            && (state(self), &self.resource_version, &self.restart_required, &self.error)
                == (state(before), &before.resource_version, &before.restart_required, &before.error)
    }
}

/// The history, shared by the `ConfigActor` that records and whoever reads it. Clones share it.
#[derive(Debug, Clone)]
pub struct ReloadHistory {
    records: Arc<Mutex<VecDeque<ReloadRecord>>>,
    latest: Arc<watch::Sender<Option<ReloadRecord>>>,
}

impl Default for ReloadHistory {
    fn default() -> Self {
        Self { records: Arc::default(), latest: Arc::new(watch::channel(None).0) }
    }
}

impl ReloadHistory {
    /// Keeps `record`, dropping the oldest beyond `capacity` (at least 1), unless it repeats the newest one (a resync
    /// of the same version, applied or rejected; see [`ReloadRecord`]).
    pub fn record(&self, record: ReloadRecord, capacity: usize) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.back().is_some_and(|before| record.repeats(before)) {
            return;
        }
        records.push_back(record.clone());
        while records.len() > capacity.max(1) {
            records.pop_front();
        }
        drop(records);
        self.latest.send_replace(Some(record));
    }

    /// Every record kept, oldest first.
    #[must_use]
    pub fn records(&self) -> Vec<ReloadRecord> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// A receiver that sees each record kept from now on.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Option<ReloadRecord>> {
        self.latest.subscribe()
    }
}
