//! Several brokers and a restarting API server: replicas converge to the same configuration hash, and the
//! supervised watch recovers after the API server comes back.

use std::time::Duration;

use brokkr_e2e::{Broker, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_converge_to_the_same_hash() {
    let cluster = Cluster::with_config("fleet", "[config_reload]\ndebounce = \"1s\"").await;
    let kubeconfig = cluster.broker_kubeconfig();
    let mut brokers = Vec::new();
    for _ in 0..3 {
        brokers.push(Broker::start(&kubeconfig, "fleet", &[], cluster.plane.dir()).await);
    }
    let mut start_generations = Vec::new();
    for broker in &brokers {
        start_generations.push(broker.wait_for_configmap().await);
    }
    cluster.apply_config("[config_reload]\ndebounce = \"1s\"\n[cors]\nallowed_origins = [\"*\"]").await;
    let mut hashes = Vec::new();
    for (broker, g) in brokers.iter().zip(start_generations) {
        let latency = broker.wait_for_generation(g + 1, Duration::from_secs(10)).await;
        println!("e2e fleet edit->applied (observed per broker, sequentially): {} ms", latency.as_millis());
        hashes.push(broker.status().await["hash"].as_str().unwrap_or_default().to_owned());
    }
    assert!(hashes.iter().all(|h| !h.is_empty() && *h == hashes[0]), "{hashes:?}");
    for broker in &brokers {
        assert_eq!(broker.allowed_origin("/healthz", "https://any.example").await.as_deref(), Some("*"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_recovers_after_the_api_server_restarts() {
    let mut cluster = Cluster::with_config("restart", "[config_reload]\ndebounce = \"1s\"").await;
    let broker = cluster.start_broker(&[]).await;
    let g = broker.wait_for_configmap().await;

    cluster.plane.stop_apiserver();
    broker
        .wait_until("the watch notices the API server is gone", Duration::from_secs(60), |b| async move {
            matches!(b.status().await["watcher"]["state"].as_str(), Some("failed" | "backoff"))
        })
        .await;
    assert_eq!(broker.get("/healthz", None).await.map(|r| r.status().as_u16()), Some(200));
    cluster.plane.start_apiserver().await.expect("API server restarts");
    cluster.admin = cluster.plane.admin_client().await.expect("admin client");
    broker
        .wait_until("the watch is back", Duration::from_secs(90), |b| async move {
            b.status().await["watcher"]["state"] == "watching"
        })
        .await;
    let status = broker.status().await;
    assert!(status["watcher"]["restarts"].as_u64() >= Some(1));
    assert_eq!(status["generation"], g, "the re-list found the same ConfigMap: unchanged, no spurious reload");

    cluster.apply_config("[config_reload]\ndebounce = \"1s\"\n[cors]\nmax_age = \"1m\"").await;
    broker.wait_for_generation(g + 1, Duration::from_secs(10)).await;
}
