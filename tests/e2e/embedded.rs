//! `actors/examples/embedded.rs` against the real API server: another program's settings type follows its own
//! ConfigMap, consumes a live key, refuses a bad edit, and reports under its own names.

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, time::Duration};

use brokkr_e2e::Cluster;
use k8s_openapi::api::{core::v1::ConfigMap, events::v1::Event};
use kube::{
    Api,
    api::{ListParams, ObjectMeta, Patch, PatchParams},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::ChildStdout,
};

/// The example: `BROKKR_EMBEDDED_BIN`, else built with the broker (one build, one set of features).
fn example_binary() -> PathBuf {
    let build = ["-p", "brokkr-broker", "-p", "brokkr-reload", "--bin", "brokkr-broker", "--example", "embedded"];
    brokkr_e2e::broker::built_binary("BROKKR_EMBEDDED_BIN", "examples/embedded", &build)
}

async fn write_shop(cluster: &Cluster, toml: &str) {
    let cm = ConfigMap {
        metadata: ObjectMeta { name: Some("shop".into()), ..ObjectMeta::default() },
        data: Some(BTreeMap::from([("shop.toml".to_owned(), toml.to_owned())])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(cluster.admin.clone(), &cluster.namespace)
        .patch("shop", &PatchParams::apply("e2e").force(), &Patch::Apply(&cm))
        .await
        .expect("apply the shop's ConfigMap");
}

/// Reads lines until one contains `wanted`, within `timeout`; returns every line read.
async fn until_line(lines: &mut Lines<BufReader<ChildStdout>>, wanted: &str, timeout: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(timeout, async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            let done = line.contains(wanted);
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(found, Ok(true)), "no line with {wanted:?} within {timeout:?}; saw {seen:#?}");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_example_follows_its_own_configmap_under_its_own_names() {
    let binary = example_binary();
    let cluster = Cluster::start("shop").await;
    write_shop(&cluster, "[greeting]\ntext = \"hej\"").await;
    let mut child = tokio::process::Command::from(brokkr_testenv::child_command(&binary))
        .arg(cluster.plane.admin_kubeconfig())
        .env("POD_NAMESPACE", &cluster.namespace)
        .env("SHOP__PAYMENT__KEY", "pk-live-9000")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the example");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let wait = Duration::from_secs(30);

    let start = until_line(&mut lines, "greeting: hej", wait).await;
    assert_eq!(
        start.first().map(String::as_str),
        Some("greeting: hej"),
        "the start-up read put the ConfigMap in force"
    );
    // A payment key in the ConfigMap is refused, named with the shop's variable and never shown.
    write_shop(&cluster, "[greeting]\ntext = \"hi\"\n[payment]\nkey = \"pk-live-9001\"").await;
    let secret = until_line(&mut lines, "payment.key is a secret", wait).await;
    write_shop(&cluster, "[greeting]\ntext = \"god dag\"").await;
    let edit = until_line(&mut lines, "greeting: god dag", wait).await;
    write_shop(&cluster, "[greeting]\ntext = \"\"").await;
    let refused = until_line(&mut lines, "greeting.text: must not be empty", wait).await;

    let all = [start, secret, edit, refused].concat().join("\n");
    assert!(all.contains("shop audit: greeting.text hej -> god dag"), "its own audit log: {all}");
    assert!(all.contains("SHOP__PAYMENT__KEY") && !all.contains("greeting: hi"), "the secret is refused: {all}");
    assert!(!all.contains("pk-live"), "and never shown: {all}");

    // Events are published beside the audit record, not before it: wait for the rejection's.
    let api = Api::<Event>::namespaced(cluster.admin.clone(), &cluster.namespace);
    let deadline = tokio::time::Instant::now() + wait;
    let rejected = loop {
        let events = api.list(&ListParams::default()).await.expect("list Events");
        let rejected: Vec<Event> =
            events.items.into_iter().filter(|e| e.reason.as_deref() == Some("ConfigRejected")).collect();
        if !rejected.is_empty() || tokio::time::Instant::now() > deadline {
            break rejected;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!rejected.is_empty(), "the rejection is an Event within {wait:?}");
    assert!(
        rejected.iter().all(|e| e.reporting_controller.as_deref() == Some("shop")),
        "reported as the shop: {rejected:?}"
    );
    child.kill().await.expect("stop the example");
}
