//! Demo: starts a local control plane and a broker watching it, prints the `kubectl` commands that edit the
//! ConfigMap, and streams the broker's log so a reload is visible within seconds. Ctrl-C stops everything.

use std::{io::Write, time::Duration};

use brokkr_e2e::{Cluster, broker::ADMIN_TOKEN, cluster::CONFIGMAP};

const NAMESPACE: &str = "demo";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    eprintln!("starting etcd and kube-apiserver (the first run builds them with Go; that takes a few minutes)…");
    let cluster = Cluster::with_config(
        NAMESPACE,
        "[config_reload]\ndebounce = \"2s\"\n\n[cors]\nallowed_origins = [\"https://app.example\"]\n",
    )
    .await;
    let env = [("BROKKR__LOG__FORMAT", "text")];
    let broker = cluster.start_broker(&env).await;

    let kubectl = cluster.plane.bin().join("kubectl").display().to_string();
    let kubeconfig = cluster.plane.admin_kubeconfig().display().to_string();
    let port = broker.port();
    println!(
        "\nThe broker serves on http://127.0.0.1:{port} and watches ConfigMap {NAMESPACE}/{CONFIGMAP}.\n\
         In another terminal:\n\n\
         export KUBECONFIG={kubeconfig}\n\
         alias kubectl={kubectl}\n\
         kubectl -n {NAMESPACE} get configmap {CONFIGMAP} -o yaml\n\
         kubectl -n {NAMESPACE} patch configmap {CONFIGMAP} --type merge \\\n  \
           -p '{{\"data\":{{\"broker.toml\":\"[config_reload]\\ndebounce = \\\"2s\\\"\\n[cors]\\nallowed_origins = [\\\"https://other.example\\\"]\\n[log]\\nlevel = \\\"debug\\\"\\n\"}}}}'\n\
         kubectl -n {NAMESPACE} edit configmap {CONFIGMAP}          # try an invalid value: it is rejected, nothing changes\n\
         kubectl -n {NAMESPACE} get events\n\
         curl -s -H 'Authorization: Bearer {ADMIN_TOKEN}' http://127.0.0.1:{port}/api/v1/admin/config\n\
         curl -si -H 'Origin: https://other.example' http://127.0.0.1:{port}/healthz\n\n\
         The broker's log follows. Ctrl-C stops the broker and the control plane.\n"
    );

    let mut shown = 0;
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = interval.tick() => {
                let text = std::fs::read(broker.log_path()).unwrap_or_default();
                if text.len() > shown {
                    let _ = std::io::stdout().write_all(&text[shown..]);
                    shown = text.len();
                }
            }
        }
    }
    eprintln!("stopping…");
}
