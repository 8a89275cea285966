//! A real local Kubernetes control plane for tests: etcd and kube-apiserver as processes, with RBAC identities,
//! an audit log, and an API server that can be stopped and restarted — envtest for kube-rs.

mod assets;
mod control_plane;
pub mod error;
mod pki;
mod process;

pub use assets::assets_dir;
pub use control_plane::ControlPlane;
pub use error::{Error, Result};
