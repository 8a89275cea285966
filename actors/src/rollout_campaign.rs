//! When a replica asks for the rollout's Lease, and what it does when it gets it: coordinates until no rollout
//! needs a coordinator, then gives the Lease back. Errors back off up to a minute.

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use brokkr_config::AppSettings;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::{
    lease::Attempt,
    rollout_replica::{CAMPAIGN_EVERY, MAX_CAMPAIGN_EVERY, RolloutReplica, chain},
    rollout_status::{Phase, RolloutStatus},
};

impl<S: AppSettings> RolloutReplica<S> {
    /// Asks for the Lease when a coordinator is needed: no last good text yet, a rollout in progress, a valid text
    /// the status does not name, or an operator's command not acknowledged.
    pub(crate) fn campaign(&mut self, ctx: &mut Context<Self>, status: &RolloutStatus) {
        if self.last_campaign.is_some_and(|at| at.elapsed() < self.campaign_every) || *self.coordinator.stop.borrow() {
            return;
        }
        let judged = self.judged.borrow().as_ref().map(|j| j.hash.as_str().to_owned());
        let named = |hash: &str| {
            [&status.target, &status.last_good].iter().any(|v| v.as_ref().is_some_and(|v| v.hash == hash))
                || status.is_failed(hash)
                || status.observed.as_ref().is_some_and(|o| o.hash == hash)
        };
        let spec = self.object.as_ref().map(|o| o.spec.clone()).unwrap_or_default();
        let unacknowledged = (spec.promote.is_some() && spec.promote != status.promoted)
            || (spec.abort.is_some() && spec.abort != status.aborted);
        let needed = status.last_good.is_none()
            || status.phase == Phase::Progressing
            || judged.as_deref().is_some_and(|h| !named(h))
            || unacknowledged;
        if !needed {
            return;
        }
        // Taken only when needed: the lock comes back when the attempt (or the run) ends.
        let Some(mut lock) = self.lock.take() else { return };
        self.last_campaign = Some(Instant::now());
        let run = self.coordinator.clone();
        let work = async move {
            match lock.try_acquire_or_renew().await {
                Ok(Attempt::Holds { term, lease }) => {
                    info!(term, "coordinating the staged rollout");
                    let ran = run.run(&mut lock, term, &lease).await;
                    if let Err(error) = &ran {
                        warn!(error = %chain(error), "stopped coordinating");
                    }
                    (lock, ran.is_ok())
                }
                Ok(Attempt::Taken { holder }) => {
                    debug!(%holder, "another replica coordinates");
                    (lock, true)
                }
                Err(error) => {
                    warn!(%error, "could not ask for the rollout's Lease (does the chart's Lease exist?)");
                    (lock, false)
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|(lock, fine), act, _| {
            act.lock = Some(lock);
            // Errors back off, up to a minute; an answer of any kind resets it.
            act.campaign_every = if fine { CAMPAIGN_EVERY } else { (act.campaign_every * 2).min(MAX_CAMPAIGN_EVERY) };
        }));
    }
}
