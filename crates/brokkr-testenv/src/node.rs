//! A real node beside the control plane: containerd (Debian's, with runc), kubelet, kube-controller-manager and
//! kube-scheduler, so that Deployments become pods that run. Start it inside a [`crate::NetNs`], never on the
//! machine's own interfaces: its pods use the namespace's network, or a pod network of their own on a bridge in it.

use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::Api;
use tempfile::TempDir;

use crate::{ControlPlane, Error, Result, error::io, process::Process};

mod cleanup;
mod network;

pub use cleanup::{kernel_tunables, restore_kernel_tunables};
pub use network::{POD_BRIDGE, PodNetwork};

/// The name the kubelet registers.
pub const NODE_NAME: &str = "brokkr-node";
/// The pod sandbox's image: `pause` from [`node_assets_dir`], packed by [`crate::oci::pack`].
pub const PAUSE_IMAGE: &str = "localhost/brokkr/pause:1";
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Machine-wide kernel settings the kubelet sets at start (`setupKernelTunables`) and no network namespace scopes:
/// saved before it starts and written back when the node stops, so that no test leaves this machine panicking on
/// an oops or overcommitting memory.
pub const KERNEL_TUNABLES: [&str; 6] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// The kubelet keeps a link to every container's log here whatever its configuration says.
const CONTAINER_LOG_LINKS: &str = "/var/log/containers";

/// containerd, kubelet, kube-controller-manager and kube-scheduler, in a temporary folder removed on drop.
pub struct Node {
    dir: TempDir,
    socket: PathBuf,
    address: Ipv4Addr,
    tunables: Vec<(PathBuf, String)>,
    // Stopped in reverse order of start by `Drop`: the kubelet before containerd.
    processes: Vec<Process>,
}

/// The folder holding kubelet, kube-controller-manager, kube-scheduler and pause: `BROKKR_NODE_ASSETS`, else what
/// `scripts/node-assets.sh` builds into `~/.cache/brokkr/node`.
pub fn node_assets_dir() -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/node-assets.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(io(format!("run {}", script.display())))?;
    if !output.status.success() {
        return Err(Error::Assets(format!("{} failed with {}", script.display(), output.status)));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
}

fn containerd_config(dir: &Path, socket: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # A pod's network namespace is a file bind-mounted in /var/run/netns by default, a folder of this machine.
  netns_mounts_under_state_dir = true
  # port-forward and exec: the kubelet proxies to this server, inside the test's network namespace.
  stream_server_address = "127.0.0.1"
  # This machine may not lower OOM scores: runc fails with `oom_score_adj: Permission denied` without it.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = "{d}/runc"
"#,
        socket = socket.display()
    )
}

/// What a kubelet's configuration names besides its folders.
struct KubeletSetup<'a> {
    address: Ipv4Addr,
    port: u16,
    ca: &'a Path,
    debugging: bool,
}

fn kubelet_config(dir: &Path, socket: &Path, setup: &KubeletSetup<'_>) -> String {
    let d = dir.display();
    let KubeletSetup { address, port, debugging, .. } = setup;
    let ca = setup.ca.display();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
containerRuntimeEndpoint: unix://{socket}
address: {address}
port: {port}
readOnlyPort: 0
healthzPort: 0
# port-forward (with a pod network), for the API server only: a client certificate of the test CA, each request
# authorized by the API server. Nothing else in the namespace gets in.
enableDebuggingHandlers: {debugging}
enableSystemLogHandler: false
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: {ca}
authorization:
  mode: Webhook
failSwapOn: false
resolvConf: ""
podLogsDir: {d}/pod-logs
localStorageCapacityIsolation: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
syncFrequency: 10s
volumePluginDir: {d}/volume-plugins
"#,
        socket = socket.display()
    )
}

impl Node {
    /// Starts the node's processes against `plane` with `address` as the node IP (an address of the namespace it
    /// runs in), imports the pause image, and waits until the node is `Ready`. Its pods use the host network.
    pub async fn start(plane: &ControlPlane, address: Ipv4Addr) -> Result<Self> {
        Self::start_with(plane, address, PodNetwork::HostOnly).await
    }

    /// Like [`Node::start`], with the pods on `network`. Refused outside a network namespace of the test's own
    /// ([`crate::netns::current`]): the pod network adds a bridge and routes, and the kubelet writes machine-wide
    /// kernel settings.
    pub async fn start_with(plane: &ControlPlane, address: Ipv4Addr, network: PodNetwork) -> Result<Self> {
        crate::netns::current().ok_or(Error::NotIsolated("Node::start"))?;
        let bin = node_assets_dir()?;
        let dir = crate::process::private_temp_dir("brokkr-node-")?;
        let path = dir.path().to_owned();
        let socket = path.join("containerd.sock");
        for folder in ["cni", "kubelet", "pod-logs", "runc"] {
            fs::create_dir_all(path.join(folder)).map_err(io(format!("create {folder}")))?;
        }
        let write = |name: &str, text: &str| -> Result<String> {
            let file = path.join(name);
            fs::write(&file, text).map_err(io(format!("write {}", file.display())))?;
            Ok(file.display().to_string())
        };
        write("cni/10-pods.conflist", &network.cni_config(&path))?;
        let tunables = cleanup::kernel_tunables();
        let mut node = Self { dir, socket: socket.clone(), address, tunables, processes: Vec::new() };
        let config = write("containerd.toml", &containerd_config(&path, &socket))?;
        node.processes.push(Process::spawn(
            "containerd",
            Path::new("containerd"),
            &[format!("--config={config}")],
            &path,
        )?);
        node.wait_for_containerd().await?;
        let pause = path.join("pause.tar");
        crate::oci::pack(
            &crate::oci::ImageSpec {
                name: PAUSE_IMAGE.into(),
                binary: bin.join("pause"),
                cmd: Vec::new(),
                user: "65535:65535".into(),
            },
            &pause,
        )?;
        node.import(&pause)?;

        let admin = plane.admin_kubeconfig().display().to_string();
        let plane_dir = plane.dir().display().to_string();
        let kubelet_port = crate::process::free_port()?;
        let ca = plane.ca_file();
        let debugging = matches!(network, PodNetwork::Bridge { .. });
        let setup = KubeletSetup { address, port: kubelet_port, ca: &ca, debugging };
        let kubelet = write("kubelet.yaml", &kubelet_config(&path, &socket, &setup))?;
        let kubelet_args = [
            format!("--config={kubelet}"),
            format!("--kubeconfig={admin}"),
            format!("--root-dir={}", path.join("kubelet").display()),
            format!("--cert-dir={}", path.join("kubelet-pki").display()),
            format!("--node-ip={address}"),
            format!("--hostname-override={NODE_NAME}"),
            "--v=1".into(),
        ];
        node.processes.push(Process::spawn("kubelet", &bin.join("kubelet"), &kubelet_args, &path)?);
        let controller_manager_args = [
            format!("--kubeconfig={admin}"),
            format!("--root-ca-file={plane_dir}/ca.crt"),
            format!("--service-account-private-key-file={plane_dir}/sa.key"),
            "--leader-elect=false".into(),
            "--secure-port=0".into(),
            // Its default is a folder of this machine, which it would create.
            format!("--flex-volume-plugin-dir={}", path.join("flex-volume").display()),
            "--v=1".into(),
        ];
        node.processes.push(Process::spawn(
            "kube-controller-manager",
            &bin.join("kube-controller-manager"),
            &controller_manager_args,
            &path,
        )?);
        let scheduler_args = [format!("--kubeconfig={admin}"), "--leader-elect=false".into(), "--v=1".into()];
        node.processes.push(Process::spawn("kube-scheduler", &bin.join("kube-scheduler"), &scheduler_args, &path)?);
        node.wait_until_ready(plane).await?;
        Ok(node)
    }

    /// The node's IP: the address of its host-network pods.
    #[must_use]
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The folder of its logs and state.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Imports the OCI image archive `archive` (see [`crate::oci::pack`]) where the kubelet finds it.
    pub fn import(&self, archive: &Path) -> Result<()> {
        let output = Command::new("ctr")
            .arg(format!("--address={}", self.socket.display()))
            .args(["--namespace=k8s.io", "images", "import"])
            .arg(archive)
            .output()
            .map_err(io("run ctr images import"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::Assets(format!(
                "ctr images import {} failed: {}",
                archive.display(),
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    }

    async fn wait_for_containerd(&mut self) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            let version =
                Command::new("ctr").arg(format!("--address={}", self.socket.display())).arg("version").output();
            if version.is_ok_and(|o| o.status.success()) {
                return Ok(());
            }
            self.check_running()?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(self.not_ready("containerd"))
    }

    async fn wait_until_ready(&mut self, plane: &ControlPlane) -> Result<()> {
        let nodes: Api<NodeObject> = Api::all(plane.admin_client().await?);
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            let node = nodes.get_opt(NODE_NAME).await.ok().flatten();
            let ready = node
                .and_then(|n| n.status?.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready {
                return Ok(());
            }
            self.check_running()?;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(self.not_ready("kubelet"))
    }

    fn check_running(&mut self) -> Result<()> {
        match self.processes.iter_mut().position(|p| !p.is_running()).map(|i| &self.processes[i]) {
            Some(process) => Err(Error::NotReady {
                component: process.name,
                seconds: 0,
                log: process.log.clone(),
                tail: process.tail(4000),
            }),
            None => Ok(()),
        }
    }

    fn not_ready(&self, component: &'static str) -> Error {
        let process = self.processes.iter().find(|p| p.name == component);
        Error::NotReady {
            component,
            seconds: READY_TIMEOUT.as_secs(),
            log: process.map(|p| p.log.clone()).unwrap_or_default(),
            tail: process.map(|p| p.tail(4000)).unwrap_or_default(),
        }
    }

    /// The end of every component's log, for a failing test.
    #[must_use]
    pub fn logs(&self) -> String {
        self.processes.iter().map(|p| format!("--- {} ---\n{}\n", p.name, p.tail(3000))).collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // The kubelet first, so that it does not restart what containerd is told to stop; then every container
        // containerd still runs, so that no pod outlives the test.
        let mut containers = Vec::new();
        while let Some(mut process) = self.processes.pop() {
            if process.name == "containerd" {
                containers = cleanup::containers(&self.socket);
                cleanup::kill_tasks(&self.socket);
            }
            process.stop();
        }
        cleanup::kill_shims(&self.socket);
        cleanup::unmount_below(self.dir.path());
        cleanup::remove_links_into(Path::new(CONTAINER_LOG_LINKS), self.dir.path());
        cleanup::remove_container_cgroups(&containers);
        cleanup::restore_kernel_tunables(&self.tunables);
    }
}
