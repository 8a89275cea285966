//! A real local Kubernetes control plane for tests: etcd and kube-apiserver as processes, with RBAC identities,
//! an audit log, and an API server that can be stopped and restarted — envtest for kube-rs — plus a TCP proxy that
//! breaks connections to it on command, and the helpers every crate's tests share ([`CapturedLog`], [`SecretVolume`]).

mod assets;
mod captured_log;
mod control_plane;
pub mod corpus;
pub mod error;
mod etcd;
pub mod netns;
pub mod node;
pub mod oci;
mod pki;
mod process;
mod proxy;
mod secret_volume;
pub mod slow_client;
mod vanish;

pub use assets::assets_dir;
pub use captured_log::CapturedLog;
pub use control_plane::{ControlPlane, KUBELET_CLIENT};
pub use error::{Error, Result};
pub use netns::NetNs;
pub use node::Node;
pub use process::child_command;
pub use proxy::{FaultProxy, Faults};
pub use secret_volume::SecretVolume;
