//! Errors of starting and driving the local control plane.

use std::path::PathBuf;

/// Why the control plane could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binaries could not be found or built.
    #[error("failed to provide kube-apiserver and etcd: {0}")]
    Assets(String),
    /// A file or process operation failed.
    #[error("{what} failed")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Certificates could not be generated.
    #[error("failed to generate certificates")]
    Pki(#[source] rcgen::Error),
    /// A component did not become ready in time; its log follows.
    #[error("{component} was not ready after {seconds} s; log {log}:\n{tail}")]
    NotReady {
        /// `etcd` or `kube-apiserver`.
        component: &'static str,
        /// How long it was given.
        seconds: u64,
        /// Its log file.
        log: PathBuf,
        /// The end of that log.
        tail: String,
    },
    /// A kubeconfig could not be turned into a client.
    #[error("failed to build a client")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// A client could not be created.
    #[error("failed to create a client")]
    Client(#[source] kube::Error),
    /// `nft` refused a rule set of the fault proxy (the rules and its message).
    #[error("nft failed: {0}")]
    Netfilter(String),
    /// Something that would listen on every address, or change the network, was started outside a network
    /// namespace of the test's own.
    #[error("{0} runs only inside a test network namespace (brokkr_testenv::NetNs), never on this machine's network")]
    NotIsolated(&'static str),
    /// A request to the API server failed.
    #[error("{what} failed")]
    Api {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// etcd's JSON gateway refused or did not answer a request.
    #[error("etcd request failed: {0}")]
    Etcd(String),
}

/// Result with [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
