//! Command-line interface.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

/// The Brokkr broker.
#[derive(Debug, Parser)]
#[command(name = "brokkr-broker", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker: HTTP server plus ConfigMap hot reload when in Kubernetes.
    Serve(ServeArgs),
    /// Validate a TOML configuration file offline; exit 1 with the error if it is invalid.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
        /// Judge it as the ConfigMap's document, as the reload and the webhook do (a secret, or a change of a key
        /// that locates the ConfigMap or must match the pod, is refused), instead of as the `--config` file.
        #[arg(long)]
        configmap: bool,
        /// With `--configmap`: the `--config` file the broker runs with, under the document.
        #[arg(long, value_name = "FILE", requires = "configmap")]
        config: Option<PathBuf>,
        /// With `--configmap`: the broker's `BROKKR__SECTION__KEY=value` variables, one per line (`#` starts a
        /// comment), as `kubectl set env --list deployment/brokkr-broker` prints them; above the document.
        #[arg(long, value_name = "FILE", requires = "configmap")]
        env_file: Option<PathBuf>,
        /// With `--configmap`: the namespace the broker reads the ConfigMap from (a document that names another
        /// is refused, as the broker refuses it). Without it, that check is skipped.
        #[arg(long, value_name = "NAME", requires = "configmap")]
        namespace: Option<String>,
    },
    /// Ask the running broker whether it is alive (the chart's liveness probe), or with `--ready` whether it is
    /// ready (its readiness probe), over its probe socket; exit 0 when it is, 1 with the reason when not.
    Probe {
        /// The socket `serve` answers on (its `--probe-socket`).
        #[arg(long, value_name = "PATH", env = "BROKKR_PROBE_SOCKET")]
        socket: PathBuf,
        /// Ask for readiness (`/readyz`: a configuration in force, not shutting down) instead of liveness.
        #[arg(long)]
        ready: bool,
    },
    /// Regenerate the settings' documentation (README table, chart values and schema) from their declarations;
    /// without `--write`, exit 1 when a file is out of date.
    SettingsDocs {
        /// Write the files instead of checking them.
        #[arg(long)]
        write: bool,
        /// The repository's root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML file layered over the built-in defaults (and under the ConfigMap and the environment).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Follow the `--config` file while running, as Prometheus's `auto-reload-config` and Vector's `--watch-config`
    /// do: an edit in place or a file renamed over it is applied within the poll interval and the debounce, and
    /// SIGHUP and `POST /api/v1/admin/config/reload` read it at once. The file is judged as the file layer (it may
    /// hold the admin token; a changed restart-only key waits for the next start), so it must be a file no one else
    /// can write: follow a mounted ConfigMap with `--configmap-file`. No API request is made.
    #[arg(long, env = "BROKKR_WATCH_CONFIG", requires = "config", conflicts_with = "configmap_file")]
    pub watch_config: bool,
    /// Read the broker's ConfigMap from this file, where a volume mounts it, instead of from the API server: for
    /// pods that may not call the API. Judged exactly as the ConfigMap's document (no secrets, no change of a fixed
    /// key), read at start-up and followed. No API request is made: no Events, no Pod status.
    #[arg(long, value_name = "FILE", env = "BROKKR_CONFIGMAP_FILE")]
    pub configmap_file: Option<PathBuf>,
    /// How often `--watch-config` and `--configmap-file` read their file (100ms to 60s).
    #[arg(long, value_name = "DURATION", env = "BROKKR_WATCH_INTERVAL", default_value = "1s", value_parser = poll_interval)]
    pub watch_interval: Duration,
    /// Kubeconfig to reach the API server from outside a cluster (`KUBECONFIG` works too).
    /// Without it, and outside a pod, no API request is made.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// After SIGTERM, how long `/readyz` answers 503 while requests are still served, before the server stops
    /// accepting (give endpoints time to stop routing to the pod; keep it under terminationGracePeriodSeconds).
    #[arg(long, value_name = "DURATION", env = "BROKKR_DRAIN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,
    /// Write what is in force as `config.brokkr.io/` annotations on the broker's own Pod (`POD_NAME`), for
    /// `kubectl brokkr`. Needs `patch` on Pods and the chart's admission policy, which `podStatus.enabled` adds
    /// and which sets this; off, the broker sends no such request.
    #[arg(long, env = "BROKKR_POD_STATUS")]
    pub pod_status: bool,
    /// The ValidatingAdmissionPolicy that guards `--pod-status` (the chart sets its own): nothing is written until
    /// dry runs show that this policy, not another one, refuses the broker changes outside its annotations.
    #[arg(long, value_name = "NAME", env = "BROKKR_POD_STATUS_POLICY")]
    pub pod_status_policy: Option<String>,
    /// Also answer the liveness and readiness probes on this Unix socket, which only the pod's own containers can
    /// reach (the chart's exec probes, `brokkr-broker probe [--ready]`, ask it); a socket a previous run left there
    /// is replaced.
    #[arg(long, value_name = "PATH", env = "BROKKR_PROBE_SOCKET")]
    pub probe_socket: Option<PathBuf>,
    /// With `rollout.enabled`: the label selector of the release's broker Pods, whose readiness, restarts and
    /// verdicts the rollout's coordinator reads (the chart sets it).
    #[arg(long, value_name = "SELECTOR", env = "BROKKR_ROLLOUT_PODS")]
    pub rollout_pods: Option<String>,
    /// With `rollout.enabled`: the name of the broker's container in those Pods, whose restarts fail a bake.
    #[arg(long, value_name = "NAME", env = "BROKKR_ROLLOUT_CONTAINER", default_value = "broker")]
    pub rollout_container: String,
    /// With `rollout.enabled`: the brokers' ServiceAccount; a Pod with the selector's labels that runs as another
    /// is not counted as a broker (the chart sets it).
    #[arg(long, value_name = "NAME", env = "BROKKR_ROLLOUT_SERVICE_ACCOUNT")]
    pub rollout_service_account: Option<String>,
}

/// A poll interval within the file source's bounds.
fn poll_interval(text: &str) -> Result<Duration, String> {
    use brokkr_reload::file_source::{MAX_POLL_INTERVAL, MIN_POLL_INTERVAL};
    let interval = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if (MIN_POLL_INTERVAL..=MAX_POLL_INTERVAL).contains(&interval) {
        Ok(interval)
    } else {
        Err(format!("must be from 100ms to 60s, not {}", humantime::format_duration(interval)))
    }
}
