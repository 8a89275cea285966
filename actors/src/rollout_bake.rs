//! A replica's bake of an admitted target: the gate's window opened when the target is applied, asked every quarter
//! of the bake and right at the end of the current wave's bake, each answer written as the replica's verdict; a
//! failed gate rolls back at once.

use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use brokkr_config::AppSettings;
use tokio::time::Instant;

use crate::{
    health_gate::{GateAnswer, GateWindow, ask},
    rollout_replica::RolloutReplica,
    rollout_status::RolloutStatus,
    rollout_verdict::{GateState, Verdict},
};

/// How long the gate may take to answer.
const GATE_DEADLINE: Duration = Duration::from_secs(5);

/// A gate window bound to the rollout and text it judges.
pub(crate) struct Bake {
    pub(crate) rollout: String,
    pub(crate) hash: String,
    pub(crate) window: Box<dyn GateWindow>,
    /// When a verdict through the end of the current wave's bake is due: the later of this replica's own bake end
    /// and the current wave's (an earlier wave's member must be healthy through the later wave's bake too).
    pub(crate) end: Instant,
    /// The wave admission `end` was computed for.
    pub(crate) wave_admitted_at: String,
    pub(crate) last_written: Option<Instant>,
    pub(crate) checking: bool,
}

impl<S: AppSettings> RolloutReplica<S> {
    /// Opens the gate's window for a newly applied target, and asks it when a verdict is due.
    pub(crate) fn bake_target(&mut self, ctx: &mut Context<Self>, status: &RolloutStatus, hash: String) {
        let fresh = self.bake.as_ref().is_none_or(|b| b.rollout != status.rollout_id || b.hash != hash);
        let (every, bake_time) = (self.bake_time / 4, self.bake_time);
        if fresh {
            let window = self.gate.open();
            let (rollout, end) = (status.rollout_id.clone(), Instant::now() + bake_time);
            let wave_admitted_at = String::new();
            self.bake =
                Some(Bake { rollout, hash, window, end, wave_admitted_at, last_written: None, checking: false });
        }
        let Some(bake) = self.bake.as_mut() else { return };
        if bake.wave_admitted_at != status.admitted_at {
            // The wave's bake ends at its admission (the coordinator's clock) plus the bake: from here, that is
            // the time left until then on this replica's clock.
            bake.wave_admitted_at.clone_from(&status.admitted_at);
            let wave_end = humantime::parse_rfc3339(&status.admitted_at).ok().map(|at| at + bake_time);
            let left = wave_end.and_then(|end| end.duration_since(std::time::SystemTime::now()).ok());
            bake.end = bake.end.max(Instant::now() + left.unwrap_or_default());
            // A verdict right at the bake's end, so that the wave passes without waiting for the next one.
            let wake = bake.end.saturating_duration_since(Instant::now()) + Duration::from_millis(50);
            ctx.run_later(wake, |act, ctx| act.tick(ctx));
        }
        let end = bake.end;
        let due = bake.last_written.is_none_or(|at| at.elapsed() >= every || (at < end && Instant::now() >= end));
        if !due || bake.checking {
            return;
        }
        bake.checking = true;
        // The verdict holds up to the moment the gate was asked, not up to its answer.
        let (asked, asked_wall) = (Instant::now(), std::time::SystemTime::now());
        let mut window = std::mem::replace(&mut bake.window, Box::new(crate::health_gate::ReadinessOnly));
        let (rollout, hash, gate) = (bake.rollout.clone(), bake.hash.clone(), self.gate.name());
        let check = async move {
            let answer = ask(window.as_mut(), GATE_DEADLINE).await;
            (answer, window)
        };
        ctx.spawn(check.into_actor(self).map(move |(answer, window), act, ctx| {
            let Some(bake) = act.bake.as_mut().filter(|b| b.rollout == rollout && b.hash == hash) else { return };
            (bake.window, bake.checking, bake.last_written) = (window, false, Some(asked));
            // Asked before the bake's end and answered after it: the verdict through the end is due now.
            let ended_meanwhile = asked < bake.end && Instant::now() >= bake.end;
            let through = humantime::format_rfc3339_millis(asked_wall).to_string();
            let (state, reason) = match &answer {
                GateAnswer::Healthy { basis } => (GateState::Healthy, basis.clone()),
                GateAnswer::Unhealthy { reason } => (GateState::Failed, reason.clone()),
            };
            let verdict = Verdict { rollout, hash, state, through, reason: reason.clone(), gate: gate.into() };
            act.annotate(ctx, Some(verdict));
            if state == GateState::Failed {
                act.metrics.gate_failures.inc();
                act.roll_back(ctx, format!("the {gate} gate failed: {reason}"));
            } else if ended_meanwhile {
                act.tick(ctx);
            }
        }));
    }
}
