//! Errors that stop the broker from starting.

use std::net::SocketAddr;

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The configuration from defaults, file and environment is invalid.
    #[error("invalid configuration")]
    Config(#[from] brokkr_config::ConfigError),
    /// The hot-reload subsystem could not connect.
    #[error("failed to start ConfigMap hot reload")]
    Registration(#[from] brokkr_reload::registration::RegistrationError),
    /// The admission webhook could not start (TLS setup or bind).
    #[error("failed to start the admission webhook")]
    Webhook(#[from] crate::webhook::WebhookError),
    /// The liveness probe's socket could not be served.
    #[error("failed to serve the liveness probe")]
    Probe(#[from] crate::probe::ProbeError),
    /// `--configmap-file` is given, but nothing says which namespace the ConfigMap belongs to.
    #[error(
        "--configmap-file needs the namespace the ConfigMap is read from: set POD_NAMESPACE (the chart does) or \
         config_reload.namespace"
    )]
    ConfigMapFileNamespace,
    /// `rollout.enabled` is set, but the broker cannot take part in a staged rollout as started.
    #[error("rollout.enabled needs {0} (the chart sets it with rollout.enabled)")]
    Rollout(&'static str),
    /// Logging could not be set up.
    #[error("failed to set up logging: {0}")]
    Logging(String),
    /// The HTTP server could not bind or failed.
    #[error("HTTP server on {addr} failed")]
    Server {
        /// The address from `server.listen`.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
