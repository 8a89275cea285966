//! The network of a node's pods: the host's (the test's namespace's), or a bridge of their own in it, set up by the
//! CNI plugins of Debian's containernetworking-plugins.

use std::{net::Ipv4Addr, path::Path};

/// For a node whose pods use the host network only: the runtime still reports its network ready only once a CNI
/// config exists, and the node is `NotReady` until then. Loopback is the one network such a config can name that
/// needs no interface.
const LOOPBACK_CNI_CONFIG: &str =
    r#"{"cniVersion": "1.0.0", "name": "brokkr-loopback", "plugins": [{"type": "loopback"}]}"#;

/// The network of a node's pods.
#[derive(Debug, Clone, Copy)]
pub enum PodNetwork {
    /// Every pod runs with `hostNetwork: true` (the namespace's network); other pods get no address.
    HostOnly,
    /// Each pod gets an address of `subnet` (a `/24`, its first address the gateway) on a Linux bridge in the
    /// namespace, by the CNI `bridge` and `host-local` plugins of Debian's containernetworking-plugins. Nothing
    /// routes out of the namespace: pods reach the node's addresses and each other, and nothing else.
    Bridge {
        /// The pods' subnet, such as `10.124.0.0`.
        subnet: Ipv4Addr,
    },
}

/// The bridge the pods' veth pairs join.
pub const POD_BRIDGE: &str = "brokkr0";

impl PodNetwork {
    /// The address the namespace has on the pod network (the pods' gateway): where the API server's and the
    /// kubelet's connections to pods come from. `None` without a pod network.
    #[must_use]
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        match self {
            Self::HostOnly => None,
            Self::Bridge { subnet } => Some(Ipv4Addr::from(u32::from(*subnet) | 1)),
        }
    }

    pub(super) fn cni_config(&self, dir: &Path) -> String {
        match self {
            Self::HostOnly => LOOPBACK_CNI_CONFIG.to_owned(),
            // host-local keeps its leases in `dataDir`, by default a folder of this machine (/var/lib/cni).
            Self::Bridge { subnet } => format!(
                r#"{{"cniVersion": "1.0.0", "name": "brokkr-pods", "plugins": [{{"type": "bridge", "bridge": "{POD_BRIDGE}", "isGateway": true, "ipMasq": false, "hairpinMode": true, "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{subnet}/24"}}]], "routes": [{{"dst": "0.0.0.0/0"}}], "dataDir": "{}"}}}}]}}"#,
                dir.join("cni-ipam").display()
            ),
        }
    }
}
