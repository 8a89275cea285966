//! A replica's bake of an admitted target and what it writes on its own Pod: the gate's window opened when the
//! target is applied, asked every quarter of the bake and right at the end of the current wave's bake, each answer
//! written as the replica's verdict (one write at a time); a failed gate rolls back at once.

use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use brokkr_config::AppSettings;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::{
    health_gate::{GateAnswer, GateWindow, ask},
    rollout_pods::DOCUMENT_HASH,
    rollout_replica::RolloutReplica,
    rollout_status::RolloutStatus,
    rollout_verdict::{GateState, VERDICT, Verdict},
    transport::bounded,
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
    /// When the window opened: the verdict says `healthy` only once the window covers a whole bake.
    pub(crate) opened: Instant,
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
            let (rollout, opened) = (status.rollout_id.clone(), Instant::now());
            let end = opened + bake_time;
            let wave_admitted_at = String::new();
            self.bake = Some(Bake {
                rollout,
                hash,
                window,
                end,
                opened,
                wave_admitted_at,
                last_written: None,
                checking: false,
            });
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
        let covered = asked >= bake.opened + bake_time;
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
                // Healthy so far, but not yet through a whole bake of its own: a replica that applied late (a
                // newcomer in an admitted wave) must not pass a wave on a window of a few seconds.
                GateAnswer::Healthy { basis } if !covered => (GateState::Applied, basis.clone()),
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

    /// Writes a `rejected` verdict once for the current rollout when this replica's own layers refuse its target
    /// (its file or environment differs) or the last good text: the coordinator halts the rollout at once, with the
    /// reason, instead of waiting out the deadline.
    pub(crate) fn report_refusal(&mut self, ctx: &mut Context<Self>, status: &RolloutStatus, reason: String) {
        let Some(target) = status.target.as_ref() else { return };
        let key = (status.rollout_id.clone(), target.hash.clone());
        if self.refusal_reported.as_ref() == Some(&key) {
            return;
        }
        self.refusal_reported = Some(key);
        let through = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let verdict = Verdict {
            rollout: status.rollout_id.clone(),
            hash: target.hash.clone(),
            state: GateState::Rejected,
            through,
            reason,
            gate: "judgement".into(),
        };
        self.annotate(ctx, Some(verdict));
    }

    /// One write at a time: a verdict asked for while one is in flight waits for it and is written next (the
    /// newest wins), so verdicts never land out of order and a slow API server does not pile writes up.
    pub(crate) fn annotate(&mut self, ctx: &mut Context<Self>, verdict: Option<Verdict>) {
        if self.annotating {
            if verdict.is_some() || self.annotate_next.is_none() {
                self.annotate_next = Some(verdict);
            }
            return;
        }
        let hash = self.running.borrow().clone();
        let mut annotations = serde_json::Map::new();
        if let Some(hash) = &hash {
            annotations.insert(DOCUMENT_HASH.into(), json!(hash.as_str()));
        }
        if let Some(verdict) = &verdict {
            annotations.insert(VERDICT.into(), json!(verdict.to_annotation()));
        }
        if annotations.is_empty() {
            return;
        }
        self.annotating = true;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.names.namespace);
        let (pod, patch) = (self.names.pod.clone(), json!({ "metadata": { "annotations": annotations } }));
        let write = async move {
            let params = PatchParams { field_manager: Some("brokkr-broker".into()), ..PatchParams::default() };
            bounded(pods.patch(&pod, &params, &Patch::Merge(&patch))).await.map(drop)
        };
        let written_before = self.annotations_written;
        ctx.spawn(write.into_actor(self).map(move |written, act, ctx| {
            act.annotating = false;
            if let (Err(_), Some(verdict)) = (&written, verdict) {
                // Written again in a second unless a newer write is queued or succeeds meanwhile: a lost verdict
                // would hold its wave until the next one.
                ctx.run_later(Duration::from_secs(1), move |act, ctx| {
                    if act.annotations_written == written_before && act.annotate_next.is_none() {
                        act.annotate(ctx, Some(verdict));
                    }
                });
            }
            match written {
                Ok(()) => {
                    act.written_hash = hash;
                    act.annotations_written += 1;
                }
                // The wave waits for a verdict that is not written: it can never pass on one that is not. Said
                // once a minute at most: the write is tried again every second.
                Err(error) if act.annotate_warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) => {
                    act.annotate_warned = Some(Instant::now());
                    warn!(%error, "could not write the rollout annotations on this Pod");
                }
                Err(error) => debug!(%error, "could not write the rollout annotations on this Pod"),
            }
            if let Some(next) = act.annotate_next.take() {
                act.annotate(ctx, next);
            }
        }));
    }
}
