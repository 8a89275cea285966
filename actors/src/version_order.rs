//! Which ConfigMap versions the `ConfigActor` may still act on: resourceVersion order, and a sequence number where
//! versions cannot be ordered.

use std::cmp::Ordering;

use crate::{messages::ConfigMapState, resource_version};

/// The newest version acted on, and a count of applies for reads whose version cannot be ordered against it.
///
/// resourceVersions of one resource are comparable integers (KEP-5504, apimachinery's `CompareResourceVersion`);
/// where a server's are not, a read overtaken by an apply while it was in flight cannot be placed and is read
/// again or dropped by its caller.
#[derive(Debug, Default)]
pub(crate) struct VersionOrder {
    newest: Option<String>,
    applied: u64,
}

impl VersionOrder {
    /// Starts from the version start-up read, if any.
    pub(crate) fn starting_at(newest: Option<String>) -> Self {
        Self { newest, applied: 0 }
    }

    /// The newest resourceVersion acted on.
    pub(crate) fn newest(&self) -> Option<&str> {
        self.newest.as_deref()
    }

    /// A token for a read issued now: compare it with [`VersionOrder::overtaken`] when the read completes.
    pub(crate) fn issue(&self) -> u64 {
        self.applied
    }

    /// Whether something was applied since the read with token `issued` was issued.
    pub(crate) fn overtaken(&self, issued: u64) -> bool {
        self.applied != issued
    }

    /// True when `state` is a version older than the newest one acted on.
    pub(crate) fn is_older(&self, state: &ConfigMapState) -> bool {
        self.compare(state) == Some(Ordering::Less)
    }

    /// True when `state` can be ordered against the newest version acted on, so the sequence check is not needed.
    pub(crate) fn is_orderable(&self, state: &ConfigMapState) -> bool {
        self.compare(state).is_some()
    }

    /// Storage went back (an etcd restore): forget the newest version, so the API server's is followed.
    pub(crate) fn forget(&mut self) {
        self.newest = None;
    }

    /// Records that `state` is acted on.
    pub(crate) fn acted_on(&mut self, state: &ConfigMapState) {
        self.applied += 1;
        let ConfigMapState::Present(version) = state else { return };
        let Some(rv) = version.resource_version.as_deref() else { return };
        if self.newest.is_none() || self.compare(state) != Some(Ordering::Less) {
            self.newest = Some(rv.to_owned());
        }
    }

    fn compare(&self, state: &ConfigMapState) -> Option<Ordering> {
        let ConfigMapState::Present(version) = state else { return None };
        resource_version::compare(version.resource_version.as_deref()?, self.newest.as_deref()?)
    }
}
