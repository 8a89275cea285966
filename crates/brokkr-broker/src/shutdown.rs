//! Signals: SIGHUP reloads; SIGTERM and Ctrl-C drop readiness, keep serving for the drain delay, then stop
//! gracefully so that requests in flight finish.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix_web::dev::ServerHandle;
use brokkr_reload::{ReloadNow, Subsystem};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{info, warn};

/// How long requests in flight may take to finish once the server stops accepting.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Set once shutdown began: `/readyz` answers 503 so the Service stops sending traffic, while requests are
/// still served until the drain delay is over.
#[derive(Debug, Default)]
pub struct Draining(AtomicBool);

impl Draining {
    /// True once SIGTERM or Ctrl-C arrived.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Marks the start of the drain.
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Installs the SIGHUP handler now: from this call on, SIGHUP no longer terminates the process (its default
/// action), and a SIGHUP that arrives before [`reload_on_sighup`] runs is kept and handled then.
#[must_use]
pub fn hangups() -> Option<Signal> {
    match signal(SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            // Logging is not set up yet this early.
            eprintln!("brokkr-broker: SIGHUP reload unavailable: {error}");
            None
        }
    }
}

/// SIGHUP re-reads the ConfigMap now, bypassing the debounce, like `POST /api/v1/admin/config/reload`.
pub fn reload_on_sighup(hangups: Option<Signal>, subsystem: Subsystem) {
    let Some(mut hangups) = hangups else {
        return warn!("SIGHUP reload unavailable");
    };
    actix::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(actor) = &subsystem.config_actor else {
                info!("SIGHUP ignored: ConfigMap hot reload is disabled");
                continue;
            };
            match actor.send(ReloadNow).await {
                Ok(Ok(report)) => {
                    info!(outcome = report.outcome.as_str(), generation = report.generation, "SIGHUP reload")
                }
                Ok(Err(error)) => warn!(error = %crate::report::chain(&error), "SIGHUP reload failed"),
                Err(error) => warn!(%error, "SIGHUP reload failed"),
            }
        }
    });
}

/// On SIGTERM or Ctrl-C: readiness drops at once, requests are still served for `drain_delay` (endpoints take
/// a moment to stop routing to the pod), then every server stops accepting and waits for requests in flight.
pub fn drain_on_sigterm(server: Vec<ServerHandle>, draining: Arc<Draining>, drain_delay: Duration) {
    actix::spawn(async move {
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                warn!(%error, "SIGTERM handler unavailable; only Ctrl-C stops the broker gracefully");
                return wait_for_ctrl_c(server, draining, drain_delay).await;
            }
        };
        tokio::select! {
            _ = terminate.recv() => info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => info!("Ctrl-C received"),
        }
        drain(server, &draining, drain_delay).await;
    });
}

async fn wait_for_ctrl_c(server: Vec<ServerHandle>, draining: Arc<Draining>, drain_delay: Duration) {
    if tokio::signal::ctrl_c().await.is_ok() {
        drain(server, &draining, drain_delay).await;
    }
}

async fn drain(servers: Vec<ServerHandle>, draining: &Draining, drain_delay: Duration) {
    draining.start();
    info!(drain_delay = %humantime::format_duration(drain_delay), "readiness dropped; draining before shutdown");
    tokio::time::sleep(drain_delay).await;
    info!("no longer accepting connections; waiting for requests in flight");
    futures::future::join_all(servers.iter().map(|server| server.stop(true))).await;
}
