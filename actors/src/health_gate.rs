//! The health gate of a staged rollout: what the subsystem asks the embedding program about a replica while it
//! bakes a new configuration (docs/ARCHITECTURE.md, "Staged rollout"). The coordinator adds what Kubernetes knows
//! (the replica stayed Ready and was not restarted); this is the application's own judgement of its traffic.

use std::{fmt, time::Duration};

use futures::future::BoxFuture;

/// What a gate says about a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateAnswer {
    /// Healthy so far.
    Healthy {
        /// How it was decided, for the verdict: `"error ratio 0.4% of 120 requests"`, or
        /// [`READINESS_ALONE`] when there was too little traffic to judge.
        basis: String,
    },
    /// Not healthy: the rollout rolls this configuration back.
    Unhealthy {
        /// Why, for the verdict, the Event and the operator: `"error ratio 62% of 80 requests, over 5%"`.
        reason: String,
    },
}

/// The basis of a healthy answer given with too little traffic to judge: readiness alone decides.
pub const READINESS_ALONE: &str = "decided on readiness alone";

impl GateAnswer {
    /// Whether the gate passed.
    #[must_use]
    pub const fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy { .. })
    }
}

impl fmt::Display for GateAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Healthy { basis } => write!(f, "healthy ({basis})"),
            Self::Unhealthy { reason } => write!(f, "unhealthy: {reason}"),
        }
    }
}

/// The application's health gate: implemented by the embedding program (the broker's reads its traffic metrics;
/// `examples/embedded.rs` has one of its own).
pub trait HealthGate: Send + Sync + 'static {
    /// A short name for verdicts and Events, such as `traffic`.
    fn name(&self) -> &'static str;

    /// Opens a window at the moment the configuration under test is applied: the window judges what happens from
    /// then on, never before.
    fn open(&self) -> Box<dyn GateWindow>;
}

/// One window of a [`HealthGate`], asked again every few seconds while the bake runs.
pub trait GateWindow: Send {
    /// The answer for the whole window so far. An answer that does not come within the deadline of [`ask`] is a
    /// failure.
    fn check(&mut self) -> BoxFuture<'_, GateAnswer>;
}

/// A gate with no opinion: every window is healthy on readiness alone. For programs that implement none.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadinessOnly;

impl HealthGate for ReadinessOnly {
    fn name(&self) -> &'static str {
        "readiness"
    }

    fn open(&self) -> Box<dyn GateWindow> {
        Box::new(ReadinessOnly)
    }
}

impl GateWindow for ReadinessOnly {
    fn check(&mut self) -> BoxFuture<'_, GateAnswer> {
        Box::pin(futures::future::ready(GateAnswer::Healthy { basis: READINESS_ALONE.into() }))
    }
}

/// Asks `window`, giving it `deadline` to answer: a gate that hangs has failed, and says so.
pub async fn ask(window: &mut dyn GateWindow, deadline: Duration) -> GateAnswer {
    match tokio::time::timeout(deadline, window.check()).await {
        Ok(answer) => answer,
        Err(_) => GateAnswer::Unhealthy {
            reason: format!("the gate gave no answer within {}", humantime::format_duration(deadline)),
        },
    }
}
