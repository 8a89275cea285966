//! Starts the hot-reload subsystem with a staged rollout when `rollout.enabled` is set: the admission that answers
//! from the `ConfigRollout`, the replica's rollout actor with the broker's traffic gate, and the coordinator it
//! runs when it holds the Lease.

use std::{sync::Arc, time::Duration};

use brokkr_config::{ConfigLayers, ReloadableConfig, Settings, rollout_steps::parse_steps};
use brokkr_reload::{
    ConfigMapSource, Options, ReloadMetrics, Subsystem,
    admission::DocumentHash,
    lease::LeaseLock,
    registration::{ApiAccess, Staging},
    rollout_admission::RolloutAdmission,
    rollout_coordinator::{CoordinatorRun, RolloutNames},
    rollout_metrics::RolloutMetrics,
    rollout_replica::{ReplicaParts, RolloutReplica},
    rollout_step::Policy,
};
use kube::{Api, runtime::events::Reporter};
use tokio::sync::watch;

use crate::{
    cli::ServeArgs,
    error::BrokerError,
    traffic::TrafficMetrics,
    traffic_gate::{GateThresholds, TrafficGate},
};

/// How long the coordinator's Lease lasts without a renewal: a dead coordinator is replaced after this (plus the
/// skew allowance).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

/// The subsystem on `access` with the staged rollout of `settings.rollout`; `started_on` is the hash of the text
/// the start-up read put in force.
///
/// # Errors
/// [`BrokerError::Rollout`] when the Pod's name, uid or the Pods' selector is missing.
#[allow(clippy::too_many_arguments)]
pub fn start(
    access: &ApiAccess,
    args: &ServeArgs,
    settings: &Settings,
    (config, layers): (&ReloadableConfig, &ConfigLayers),
    metrics: ReloadMetrics,
    options: &Options,
    (traffic, rollout_metrics): (TrafficMetrics, RolloutMetrics),
    started_on: Option<DocumentHash>,
) -> Result<Subsystem, BrokerError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let pod = var("POD_NAME").ok_or(BrokerError::Rollout("POD_NAME, the Pod's name"))?;
    let uid = var("POD_UID").ok_or(BrokerError::Rollout("POD_UID, the Pod's uid"))?;
    let pods = args.rollout_pods.clone().ok_or(BrokerError::Rollout("--rollout-pods, the broker Pods' selector"))?;
    let rollout = &settings.rollout;
    // Checked when the settings were built: a policy whose steps do not parse never gets here.
    let steps = parse_steps(&rollout.steps).map_err(|_| BrokerError::Rollout("valid rollout.steps"))?;
    let policy = Policy { steps, bake: rollout.bake, progress_deadline: rollout.progress_deadline };
    let namespace = access.source.namespace();
    let object = settings.config_reload.configmap.clone();
    let names = RolloutNames {
        namespace: namespace.clone(),
        object: object.clone(),
        configmap: object.clone(),
        key: settings.config_reload.key.clone(),
        pods,
        container: args.rollout_container.clone(),
        service_account: args.rollout_service_account.clone().filter(|sa| !sa.is_empty()),
        pod: pod.clone(),
    };
    let (status, status_read) = watch::channel(None);
    let (document_hash, running) = watch::channel(started_on);
    let (judged_hash, judged) = watch::channel(None);
    let admission = Arc::new(RolloutAdmission::new(status_read, uid.clone()));
    let staging = Staging { admission, document_hash, judged_hash };
    let source = access.source.clone();
    let events = Some(access.events.clone() as Arc<dyn brokkr_reload::events::ReloadEvents>);
    let subsystem =
        Subsystem::register_staged(source, config.clone(), layers.clone(), metrics, events, options, Some(staging));
    let Some(config_actor) = subsystem.config_actor.clone() else {
        return Ok(subsystem);
    };
    let thresholds = GateThresholds {
        max_error_ratio: rollout.max_error_ratio.get(),
        min_requests: u64::try_from(rollout.min_requests).unwrap_or(u64::MAX),
    };
    let reporter = Reporter { controller: options.event_controller.clone(), instance: Some(pod.clone()) };
    let client = access.client.clone();
    let (stop_tx, stop) = watch::channel(false);
    // The coordinator gives the Lease up on SIGTERM instead of letting it lapse (about 17 s without a coordinator).
    actix::spawn(async move {
        if let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            terminate.recv().await;
            stop_tx.send_replace(true);
        }
    });
    let coordinator = CoordinatorRun {
        names: names.clone(),
        client: client.clone(),
        layers: layers.clone(),
        config: config.clone(),
        policy,
        reporter,
        stop,
    };
    let lock = LeaseLock::new(Api::namespaced(client.clone(), &namespace), object, pod, LEASE_DURATION);
    RolloutReplica::start_following(ReplicaParts {
        names,
        uid,
        client,
        config_actor,
        status,
        running,
        judged,
        gate: Arc::new(TrafficGate::new(traffic, thresholds)),
        coordinator,
        lock,
        metrics: rollout_metrics,
    });
    Ok(Subsystem { protocol: access.protocol.clone(), ..subsystem })
}
