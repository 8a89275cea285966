//! Harness for the end-to-end tests: starts `brokkr-broker serve` as a process and drives it over HTTP and
//! through the Kubernetes API only.

pub mod broker;
pub mod chaos;
pub mod chart;
pub mod cluster;
pub mod hostile;
pub mod kubelet;
pub mod measure;
pub mod node;
pub mod pods;
pub mod real_flood;
pub mod real_pods;
pub mod real_rollout;
pub mod staged;
pub mod timing;
pub mod watch_probe;

pub use broker::Broker;
pub use cluster::Cluster;
