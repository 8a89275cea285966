//! The ConfigMap hot-reload subsystem as actix actors.
//!
//! One edit travels `WatcherActor` → [`ConfigMapObserved`] → `DebounceActor` → [`Reload`] → `ConfigActor`, which
//! applies it through [`brokkr_config::ReloadableConfig`]. `WatcherSupervisor` restarts the watcher with backoff,
//! and [`registration`] decides whether any of it runs. Every actor is generic over the application's settings
//! ([`brokkr_config::AppSettings`], the broker's [`brokkr_config::Settings`] by default), and [`Options`] holds the
//! names it shows (metric prefix, Event reporter, audit log): `examples/embedded.rs` embeds it in another program.

pub mod admission;
mod announce;
pub mod config_actor;
mod config_actor_rollout;
pub mod debounce;
pub mod events;
pub mod file_source;
pub mod health_gate;
pub mod history;
pub mod lease;
pub mod messages;
pub mod metrics;
pub mod mounted_file;
pub mod options;
pub mod pod_status;
pub mod registration;
pub mod reload_log;
pub mod resource_version;
pub mod rollout_admission;
mod rollout_bake;
mod rollout_campaign;
pub mod rollout_coordinator;
mod rollout_members;
pub mod rollout_metrics;
pub mod rollout_objects;
pub mod rollout_plan;
pub mod rollout_pods;
pub mod rollout_replica;
pub mod rollout_startup;
pub mod rollout_status;
pub mod rollout_step;
pub mod rollout_verdict;
pub mod source;
pub mod startup;
pub mod status;
pub mod supervisor;
pub mod transport;
mod version_order;
pub mod watcher;

pub use config_actor::ConfigActor;
pub use debounce::DebounceActor;
pub use messages::{
    ConfigMapObserved, ConfigMapState, ConfigMapVersion, Reload, ReloadNow, ReloadReport, WatcherStatusChanged,
};
pub use metrics::ReloadMetrics;
pub use options::Options;
pub use registration::{Environment, Plan, Subsystem, plan};
pub use reload_log::{AuditLog, AuditRecord, TracingAudit};
pub use source::{ConfigMapSource, KubeConfigMapSource};
pub use status::{WatcherState, WatcherStatus};
pub use supervisor::WatcherSupervisor;
pub use watcher::WatcherActor;
