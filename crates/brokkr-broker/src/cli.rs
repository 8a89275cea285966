//! Command-line interface.

use std::path::PathBuf;

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
    },
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML file layered over the built-in defaults (and under the ConfigMap and the environment).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kubeconfig to reach the API server from outside a cluster (`KUBECONFIG` works too).
    /// Without it, and outside a pod, no API request is made.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}
