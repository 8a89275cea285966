//! The chart on a real node with a pod network: three replicas, each with its own IP on a bridge, made Ready by the
//! kubelet; the webhook called by the API server through its Service; `kubectl port-forward`; the memory limit the
//! runtime enforces; a hostile client against a real pod; a staged rollout on real replicas. Inside a network
//! namespace of the test's own; one test, so the node starts once.

use std::time::{Duration, Instant};

use brokkr_e2e::{
    broker::broker_binary,
    chart::{NAMESPACE, RELEASE, Walkthrough},
    kubelet::{broker_pods, eventually, name, pod_ip, ready_pods, restarts},
    node::{NODE_IP, POD_SUBNET, in_netns},
    real_flood::readiness_under_a_flood,
    real_pods::{self, BROKEN, BROKEN_SAYS, Release},
};
use brokkr_testenv::{
    Node,
    node::PodNetwork,
    oci::{ImageSpec, pack},
};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

const IMAGE: &str = "localhost/brokkr/broker:e2e";
const WAIT: Duration = Duration::from_secs(120);
/// How the API server reports the chart's webhook denying a request.
const DENIED_BY: &str = "admission webhook \"configmap.brokkr-broker.brokkr.io\" denied the request";

#[test]
fn three_replicas_on_a_pod_network_serve_the_webhook_through_its_service_and_roll_out_in_waves() {
    in_netns("three_replicas_on_a_pod_network_serve_the_webhook_through_its_service_and_roll_out_in_waves", || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
        runtime.expect("runtime").block_on(run_on_a_pod_network());
    });
}

async fn run_on_a_pod_network() {
    let w = Walkthrough::start_for_pods(NODE_IP).await;
    let network = PodNetwork::Bridge { subnet: POD_SUBNET };
    let started = Instant::now();
    let node = Node::start_with(&w.cluster.plane, NODE_IP, network).await.expect("the node becomes Ready");
    println!("e2e pod network: node Ready in {} ms", started.elapsed().as_millis());
    let archive = w.dir().join("broker-image.tar");
    let spec = ImageSpec {
        name: IMAGE.into(),
        binary: broker_binary(),
        cmd: vec!["serve".into()],
        user: "65532:65532".into(),
    };
    pack(&spec, &archive).expect("pack the broker image");
    node.import(&archive).expect("import the broker image");
    let gateway = network.gateway().expect("a gateway");

    let release = Release::install(&w, IMAGE, gateway).await;
    let pods = Api::<Pod>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let started = Instant::now();
    let ready = eventually("three replicas Ready through the kubelet's probes", WAIT, || ready_pods(&pods, 3)).await;
    println!("e2e pod network: helm install -> 3 replicas Ready in {} ms", started.elapsed().as_millis());
    let mut ips: Vec<_> = ready.iter().map(|p| pod_ip(p).expect("a pod IP")).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "each replica has an address of its own: {ips:?}");
    assert!(ips.iter().all(|ip| ip.octets()[..3] == POD_SUBNET.octets()[..3]), "on the pod network: {ips:?}");
    for pod in &ready {
        assert_ne!(pod.spec.as_ref().and_then(|s| s.host_network), Some(true), "not on the host network");
    }
    for pod in &ready {
        let status = release.status(pod).await.expect("its admin status through its own IP");
        assert_eq!(status["source"]["resource_version"], release.configmap_version().await.as_str(), "{status}");
    }

    real_pods::live_edit_reaches_every_replica(&w, &release).await;
    real_pods::port_forward_reads_the_admin_status(&w, &name(&ready[0])).await;
    real_pods::kubelet_admits_the_api_server_only(&w, &node).await;
    webhook_through_its_service(&w, &pods).await;
    real_pods::memory_limit_is_the_charts(&w, &pods).await;
    let unready = readiness_under_a_flood(&w, &pods).await;
    println!("e2e pod network: not Ready during 30 s of 1,500 slow clients on each HTTP port: {unready:?}");
    assert!(unready.is_empty(), "a flood of the HTTP ports took replicas out of Ready: {unready:?}");
    real_pods::hostile_client_against_a_real_pod(&w, &release, &pods).await;
    brokkr_e2e::real_rollout::staged_rollout_on_real_replicas(&w, &release, &pods).await;
    drop(node);
}

/// The API server calls the webhook at its Service (never a URL): a broken document is denied with the key named,
/// also while one replica is deleted and its endpoint leaves the Service.
async fn webhook_through_its_service(w: &Walkthrough, pods: &Api<Pod>) {
    let registration = format!("{RELEASE}-{NAMESPACE}");
    let config = w
        .kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            &registration,
            "-o",
            "jsonpath={.webhooks[0].clientConfig}",
        ])
        .await
        .ok("read the webhook's registration");
    let config: serde_json::Value = serde_json::from_str(&config).expect("clientConfig");
    assert!(config["url"].is_null() && config["service"]["name"] == format!("{RELEASE}-webhook"), "{config}");
    let denied = |stderr: &str| stderr.contains(DENIED_BY) && stderr.contains(BROKEN_SAYS);

    let refused = real_pods::apply_document(w, BROKEN).await;
    assert!(denied(&refused.stderr), "{refused:?}");

    // Every apply while a replica drains, exits and is replaced is denied by a broker: with the chart's
    // `failurePolicy: Ignore`, a call to an endpoint that no longer answers would let the broken document through.
    let victim = name(&broker_pods(pods).await[0]);
    w.kubectl(&["-n", NAMESPACE, "delete", "pod", &victim, "--wait=false"]).await.ok("delete a replica");
    let started = Instant::now();
    let (mut denials, mut while_terminating) = (0, 0);
    loop {
        let terminating =
            pods.get_opt(&victim).await.expect("read the Pod").is_some_and(|p| p.metadata.deletion_timestamp.is_some());
        let refused = real_pods::apply_document(w, BROKEN).await;
        assert!(denied(&refused.stderr), "answered by a broker while {victim} goes: {refused:?}");
        denials += 1;
        while_terminating += usize::from(terminating);
        let now = broker_pods(pods).await;
        let gone = !now.iter().any(|p| name(p) == victim);
        if gone && ready_pods(pods, 3).await.is_some() {
            break;
        }
        assert!(started.elapsed() < WAIT, "{victim} is not replaced: {now:?}");
    }
    println!(
        "e2e pod network: {denials} broken applies denied by the webhook through its Service while {victim} was \
         replaced ({while_terminating} while it was terminating; {} ms)",
        started.elapsed().as_millis()
    );
    assert!(while_terminating >= 1, "no apply while the replica was terminating: {denials} applies");
    let replaced = ready_pods(pods, 3).await.expect("three replicas");
    assert!(replaced.iter().all(|p| restarts(p) == 0), "a replica restarted: {replaced:?}");
}
