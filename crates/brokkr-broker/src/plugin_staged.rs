//! `kubectl brokkr` under a staged rollout: where a rollout of the ConfigMap's text stands (wave N of M, the bake
//! left, each replica's text and verdict), and `rollout promote|abort`, written to the `ConfigRollout`'s spec with
//! the operator's own credentials.

use std::{
    io::IsTerminal,
    process::ExitCode,
    time::{Duration, Instant, SystemTime},
};

use brokkr_reload::{
    admission::DocumentHash,
    rollout_objects::{ConfigRollout, rollouts},
    rollout_pods::DOCUMENT_HASH,
    rollout_status::{Command, Phase, RolloutStatus},
    rollout_verdict::{GateState, VERDICT, Verdict},
};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::plugin::{
    Attempt, EXIT_REJECTED, EXIT_TIMEOUT, PluginError, Progress, Replica, Target, attempted, printable, until_next_poll,
};

/// Where a staged rollout of one text stands, for `rollout-status`.
#[derive(Debug, PartialEq, Eq)]
pub enum Staged {
    /// The text is the last good one and every ready replica runs it.
    Done {
        /// How many.
        ready: usize,
    },
    /// The text failed its rollout: every replica runs the last good text.
    RolledBack {
        /// The failure, as the status says it (the replica and the gate, or the operator who aborted).
        reason: String,
    },
    /// The rollout stopped short of a failure (a deadline, a replica's refusal): nothing moves until an edit or an
    /// abort.
    Halted {
        /// Why.
        reason: String,
    },
    /// The coordinator judged the text invalid: no replica applies it.
    Invalid {
        /// Why.
        reason: String,
    },
    /// Still going: the line to show.
    Waiting {
        /// Wave, bake left, each replica's text and verdict.
        line: String,
    },
}

/// Judges the rollout of the text `hash` from `status` and the `replicas`' annotations, at `now`.
#[must_use]
pub fn judge_staged(hash: &str, status: &RolloutStatus, replicas: &[Replica], now: SystemTime) -> Staged {
    if let Some(failure) = status.failed.iter().rev().find(|f| f.hash == hash) {
        let reason = match failure.replica.as_str() {
            "" => failure.reason.clone(),
            replica => format!("the {} gate failed on {replica}: {}", failure.gate, failure.reason),
        };
        return Staged::RolledBack { reason };
    }
    if let Some(observed) = status.observed.as_ref().filter(|o| o.hash == hash && o.verdict == "invalid") {
        return Staged::Invalid { reason: observed.reason.clone() };
    }
    let is_target = status.target.as_ref().is_some_and(|t| t.hash == hash);
    if is_target && status.phase == Phase::Halted {
        return Staged::Halted { reason: status.reason.clone() };
    }
    let ready: Vec<&Replica> = replicas.iter().filter(|r| r.ready).collect();
    let runs = |r: &Replica| r.annotations.get(DOCUMENT_HASH).is_some_and(|h| h == hash);
    let good = status.last_good.as_ref().is_some_and(|g| g.hash == hash);
    if good && !ready.is_empty() && ready.iter().all(|r| runs(r)) {
        return Staged::Done { ready: ready.len() };
    }
    if !is_target || status.phase != Phase::Progressing {
        let line = match status.phase {
            Phase::Progressing if !is_target => "waiting for the coordinator to stage the text".to_owned(),
            _ => format!("{} of {} ready replicas run the text", ready.iter().filter(|r| runs(r)).count(), ready.len()),
        };
        return Staged::Waiting { line };
    }
    let left = humantime::parse_rfc3339(&status.admitted_at)
        .ok()
        .zip(humantime::parse_duration(&status.bake).ok())
        .map(|(at, bake)| (at + bake).duration_since(now).unwrap_or_default());
    let left = left.map_or_else(String::new, |d| format!(", bake {} left", humantime::format_duration(whole(d))));
    let each: Vec<String> = replicas.iter().map(|r| format!("{} {}", r.pod, standing(r, status, hash))).collect();
    let line = format!("wave {} of {}{left}: {}", status.admitted, status.waves.len(), each.join(", "));
    Staged::Waiting { line }
}

fn whole(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

/// A replica's text and verdict in a word or two: `healthy`, `applied`, `failed`, `waiting` (not admitted yet),
/// `other text`.
fn standing(replica: &Replica, status: &RolloutStatus, hash: &str) -> String {
    let runs = replica.annotations.get(DOCUMENT_HASH).map(String::as_str);
    let verdict = replica
        .annotations
        .get(VERDICT)
        .and_then(|v| Verdict::parse(v).ok())
        .filter(|v| v.rollout == status.rollout_id && v.hash == hash);
    match (runs == Some(hash), verdict.map(|v| v.state)) {
        (_, Some(GateState::Failed)) => "failed".into(),
        (_, Some(GateState::Rejected)) => "rejected".into(),
        (true, Some(GateState::Healthy)) => "healthy".into(),
        (true, _) => "applied".into(),
        (false, _) if runs.is_some_and(|r| status.last_good.as_ref().is_some_and(|g| g.hash == r)) => "waiting".into(),
        (false, _) => "other text".into(),
    }
}

/// The hash of the text under `key` of a ConfigMap's `data`.
#[must_use]
pub fn text_hash(data: Option<&std::collections::BTreeMap<String, String>>, key: &str) -> Option<String> {
    data.and_then(|d| d.get(key)).map(|text| DocumentHash::of(text).as_str().to_owned())
}

/// Who the operator is, as the API server authenticates them (`SelfSubjectReview`, allowed to every user).
async fn whoami(client: &Client) -> Result<String, PluginError> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = SelfSubjectReview::default();
    let what = "cannot ask the API server who you are (SelfSubjectReview)";
    let answer = crate::plugin::within(what, api.create(&PostParams::default(), &review)).await?;
    let name = answer.status.and_then(|s| s.user_info).and_then(|u| u.username);
    name.ok_or_else(|| PluginError::Refused(format!("{what}: no user name in the answer")))
}

/// `rollout promote` (`abort: false`) or `rollout abort`: writes the command for the rollout in progress into the
/// `ConfigRollout`'s spec; the coordinator acts on it and acknowledges it in the status.
///
/// # Errors
/// No rollout to act on, or the API server refused (the operator needs `patch` on `configrollouts`).
pub async fn command(client: &Client, namespace: &str, name: &str, abort: bool) -> Result<String, PluginError> {
    let api = rollouts(client.clone(), namespace);
    let what = format!("cannot read ConfigRollout {namespace}/{name}");
    let object: ConfigRollout = crate::plugin::within(&what, api.get(name)).await?;
    let status = object.status.unwrap_or_default();
    let acts = if abort {
        matches!(status.phase, Phase::Progressing | Phase::Halted)
    } else {
        status.phase == Phase::Progressing
    };
    if !acts {
        let phase = status.phase.as_str();
        return Err(PluginError::Refused(format!(
            "no rollout to {}: ConfigRollout {name} is {phase}",
            if abort { "abort" } else { "promote" }
        )));
    }
    let by = whoami(client).await?;
    let (field, wave) = if abort { ("abort", 0) } else { ("promote", status.admitted) };
    let command = Command { rollout_id: status.rollout_id.clone(), wave, by };
    // The resourceVersion read: a wave that passed in between makes this a conflict, not a stale command.
    let version = object.metadata.resource_version.clone();
    let patch = json!({ "metadata": { "resourceVersion": version }, "spec": { field: command } });
    let what = format!("cannot write spec.{field} of ConfigRollout {namespace}/{name}");
    crate::plugin::within(&what, api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))).await?;
    // Whoever may write the status wrote the id: printed escaped, as every annotation is.
    let id = printable(&status.rollout_id);
    Ok(if abort {
        format!("asked to abort rollout {id} (every replica goes back to the last good text)")
    } else {
        format!("asked to promote wave {wave} of rollout {id} (its bake is skipped)")
    })
}

/// Whether the brokers stage their edits: a `ConfigRollout` named after the ConfigMap exists (a missing kind or
/// object, or no right to read it, means no).
pub(crate) async fn staged(target: &Target) -> Result<bool, PluginError> {
    let api = rollouts(target.client.clone(), &target.namespace);
    let what = format!("cannot read ConfigRollout {}/{}", target.namespace, target.configmap);
    match crate::plugin::within(&what, api.get_opt(&target.configmap)).await {
        Ok(found) => Ok(found.is_some()),
        Err(PluginError::Api { source: kube::Error::Api(status), .. }) if matches!(status.code, 403 | 404) => Ok(false),
        Err(error) => Err(error),
    }
}

/// `rollout-status` under a staged rollout: follows the rollout of the ConfigMap's current text.
pub(crate) async fn staged_rollout_status(target: &Target, timeout: Duration) -> Result<ExitCode, PluginError> {
    let deadline = Instant::now().checked_add(timeout).ok_or(PluginError::TimeoutTooLong(timeout))?;
    let mut progress = Progress { terminal: std::io::stdout().is_terminal(), last: String::new() };
    let waited = humantime::format_duration(timeout);
    let api = rollouts(target.client.clone(), &target.namespace);
    loop {
        let read = async {
            let what = format!("cannot read ConfigMap {}/{}", target.namespace, target.configmap);
            let configmap = crate::plugin::within(&what, target.configmaps.get(&target.configmap)).await?;
            let hash = text_hash(configmap.data.as_ref(), &target.key).unwrap_or_default();
            let (_, replicas) = target.read().await?;
            let what = format!("cannot read ConfigRollout {}/{}", target.namespace, target.configmap);
            let status = crate::plugin::within(&what, api.get(&target.configmap)).await?.status.unwrap_or_default();
            Ok::<_, PluginError>((hash, status, replicas))
        };
        let (hash, status, replicas) = match attempted(read.await, &mut progress, deadline, &waited).await? {
            Attempt::Read(read) => read,
            Attempt::Again => continue,
            Attempt::TimedOut => return Ok(ExitCode::from(EXIT_TIMEOUT)),
        };
        let short = hash.get(..12).unwrap_or(&hash);
        match judge_staged(&hash, &status, &replicas, SystemTime::now()) {
            Staged::Done { ready } => {
                progress.finish(&format!("all {ready} ready replicas run text {short} (staged rollout complete)"));
                return Ok(ExitCode::SUCCESS);
            }
            Staged::RolledBack { reason } => {
                progress.finish(&format!("text {short} was rolled back: {}", printable(&reason)));
                return Ok(ExitCode::from(EXIT_REJECTED));
            }
            Staged::Halted { reason } => {
                progress.finish(&format!("the rollout of text {short} halted: {}", printable(&reason)));
                return Ok(ExitCode::from(EXIT_REJECTED));
            }
            Staged::Invalid { reason } => {
                progress.finish(&format!("text {short} is invalid: {}", printable(&reason)));
                return Ok(ExitCode::from(EXIT_REJECTED));
            }
            Staged::Waiting { line } if Instant::now() >= deadline => {
                progress.finish(&format!("timed out after {waited} waiting for text {short}: {}", printable(&line)));
                return Ok(ExitCode::from(EXIT_TIMEOUT));
            }
            Staged::Waiting { line } => progress.show(printable(&line)),
        }
        until_next_poll(deadline).await;
    }
}
