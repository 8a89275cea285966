//! One holder at a time of a `coordination.k8s.io/v1` Lease: client-go's leader-election algorithm (get, then
//! replace with a resourceVersion precondition; take over only after the holder's lease has lapsed on the local
//! monotonic clock).
//!
//! Written here rather than taken from a crate: kube-lease-manager 0.12 and kube-leader-election need kube 4 and
//! k8s-openapi 0.28, and this workspace is on kube 5 and 0.29. The staged rollout also needs what they do not give:
//! the Lease held only during a rollout (released, not kept renewed), and the term (`leaseTransitions`) as a fence.

use std::time::Duration;

use k8s_openapi::{api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::MicroTime, jiff::Timestamp};
use kube::{Api, api::PostParams};
use tokio::time::Instant;

use crate::transport::bounded;

/// The local margin for clock rate differences: a lapsed lease is taken over only this much after its duration.
pub const SKEW_ALLOWANCE: Duration = Duration::from_secs(2);

/// Whether this candidate holds the Lease after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// It holds it, in this term (`leaseTransitions` after it took the Lease).
    Holds {
        /// The fence every write of the holder names.
        term: i32,
        /// The Lease's uid: terms compare only within one Lease.
        lease: String,
    },
    /// Another holds it and its lease has not lapsed here.
    Taken {
        /// Who.
        holder: String,
    },
}

/// A candidate for the Lease `name`.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The holder and renew time last seen, and when (on this clock) they were first seen so.
    observed: Option<(Option<String>, Option<Timestamp>, Instant)>,
    /// When this candidate last renewed successfully.
    renewed: Option<Instant>,
}

impl LeaseLock {
    /// A candidate called `identity` (the Pod's name) for Lease `name` through `api`, holding it for `duration`.
    #[must_use]
    pub const fn new(api: Api<Lease>, name: String, identity: String, duration: Duration) -> Self {
        Self { api, name, identity, duration, observed: None, renewed: None }
    }

    /// Whether this candidate can still act as holder at `now`: it renewed within the lease's duration, less the
    /// skew allowance, so that it stops before anyone else may take over.
    #[must_use]
    pub fn holds(&self, now: Instant) -> bool {
        self.renewed.is_some_and(|at| now.duration_since(at) + SKEW_ALLOWANCE < self.duration)
    }

    /// Takes the Lease if it is free or lapsed, or renews it if held. One GET and at most one PUT.
    ///
    /// # Errors
    /// The API server's error; a 409 (another candidate wrote first) is an error too: try again later.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let started = Instant::now();
        let mut lease = bounded(self.api.get(&self.name)).await?;
        let spec = lease.spec.clone().unwrap_or_default();
        let (holder, renew) =
            (spec.holder_identity.clone().filter(|h| !h.is_empty()), spec.renew_time.as_ref().map(|t| t.0));
        let changed = self.observed.as_ref().is_none_or(|(h, r, _)| (h, r) != (&holder, &renew));
        if changed {
            self.observed = Some((holder.clone(), renew, started));
        }
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if let Some(other) = holder.as_ref().filter(|_| !mine) {
            let seen_at = self.observed.as_ref().map_or(started, |(_, _, at)| *at);
            // As the holder wrote it, within bounds: a Lease edited to last a year must not stop every takeover.
            let written =
                spec.lease_duration_seconds.map(|s| Duration::from_secs(s.clamp(1, 3600).unsigned_abs().into()));
            let duration = written.unwrap_or(self.duration);
            if started.duration_since(seen_at) < duration + SKEW_ALLOWANCE {
                self.renewed = None;
                return Ok(Attempt::Taken { holder: other.clone() });
            }
        }
        let now = MicroTime(Timestamp::now());
        let mut next = spec.clone();
        if !mine {
            next.acquire_time = Some(now.clone());
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        next.holder_identity = Some(self.identity.clone());
        next.lease_duration_seconds = Some(i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX));
        next.renew_time = Some(now);
        lease.spec = Some(next.clone());
        // `lease` carries the resourceVersion just read: a candidate that wrote in between makes this a 409.
        bounded(self.api.replace(&self.name, &PostParams::default(), &lease)).await?;
        self.renewed = Some(started);
        self.observed = Some((next.holder_identity.clone(), next.renew_time.as_ref().map(|t| t.0), started));
        let uid = lease.metadata.uid.clone().unwrap_or_default();
        Ok(Attempt::Holds { term: next.lease_transitions.unwrap_or(0), lease: uid })
    }

    /// Gives the Lease up if this candidate holds it, so that the next candidate need not wait for it to lapse.
    ///
    /// # Errors
    /// The API server's error.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        self.renewed = None;
        let mut lease = bounded(self.api.get(&self.name)).await?;
        let Some(spec) = lease.spec.as_mut().filter(|s| s.holder_identity.as_deref() == Some(self.identity.as_str()))
        else {
            return Ok(());
        };
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        bounded(self.api.replace(&self.name, &PostParams::default(), &lease)).await.map(drop)
    }
}
