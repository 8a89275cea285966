//! Protocol edge cases a real API server cannot be made to produce on demand, against kube's real client over a
//! mocked HTTP service: a `410 Gone` in the watch makes the supervisor restart the watch, which lists again with
//! the field selector (never a label selector) and applies what changed meanwhile.

mod support;

use std::sync::Arc;

use actix::Actor;
use brokkr_config::{ConfigLayers, ReloadableConfig};
use brokkr_reload::{
    ConfigActor, DebounceActor, KubeConfigMapSource, ReloadMetrics, WatcherState, WatcherStatus, WatcherSupervisor,
    source::{WATCH_TIMEOUT_MAX_SECS, WATCH_TIMEOUT_MIN_SECS},
};
use http::{Request, Response};
use kube::{Client, client::Body};
use serde_json::json;
use support::settle;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn list(resource_version: &str, level: &str) -> Vec<u8> {
    let item = json!({
        "metadata": { "name": "brokkr-broker", "namespace": "test", "resourceVersion": resource_version, "uid": "u1" },
        "data": { "broker.toml": format!("[log]\nlevel = \"{level}\"") },
    });
    let body = json!({ "apiVersion": "v1", "kind": "ConfigMapList", "metadata": { "resourceVersion": resource_version }, "items": [item] });
    serde_json::to_vec(&body).expect("json")
}

fn gone() -> Vec<u8> {
    let status = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "too old resource version", "reason": "Expired", "code": 410 });
    let mut line = serde_json::to_vec(&json!({ "type": "ERROR", "object": status })).expect("json");
    line.push(b'\n');
    line
}

/// Answers the next request with `body`, after checking it is a list or a watch of the one ConfigMap.
async fn answer(handle: &mut Handle, expect_watch: bool, body: Vec<u8>) -> String {
    let (request, respond) = handle.next_request().await.expect("a request");
    let uri = request.uri().to_string();
    assert!(uri.starts_with("/api/v1/namespaces/test/configmaps?"), "{uri}");
    assert!(uri.contains("fieldSelector=metadata.name%3Dbrokkr-broker"), "{uri}");
    assert!(!uri.contains("labelSelector"), "{uri}");
    assert_eq!(uri.contains("watch=true"), expect_watch, "{uri}");
    respond.send_response(Response::builder().body(Body::from(body)).expect("response"));
    uri
}

#[actix_rt::test]
async fn a_410_gone_in_the_watch_restarts_it_and_the_relist_applies_what_changed() {
    tokio::time::pause();
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let source = Arc::new(KubeConfigMapSource::new(Client::new(service, "test"), "test", "brokkr-broker"));
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let metrics = ReloadMetrics::default();
    let status = WatcherStatus::new(WatcherState::Listing);
    let config_actor = ConfigActor::new(config.clone(), layers, source.clone(), metrics.clone()).start();
    let debounce = DebounceActor::new(config.clone(), config_actor.recipient(), metrics.clone()).start();
    WatcherSupervisor::new(source, debounce.recipient(), metrics.clone(), status.clone()).start();

    answer(&mut handle, false, list("10", "debug")).await;
    let watch = answer(&mut handle, true, gone()).await;
    assert!(watch.contains("resourceVersion=10"), "the watch continues from the list: {watch}");
    // The server ends a healthy watch after a timeout drawn from 240–340 s (the transport notices a dead
    // connection, not short watches).
    let timeout = watch.split(['?', '&']).find_map(|p| p.strip_prefix("timeoutSeconds=")).and_then(|t| t.parse().ok());
    assert!(timeout.is_some_and(|t: u32| (WATCH_TIMEOUT_MIN_SECS..=WATCH_TIMEOUT_MAX_SECS).contains(&t)), "{watch}");
    settle().await;
    assert_eq!(config.current().settings.log.level, "debug");

    // The restarted watch lists again (after the backoff, in paused time) and sees a newer version.
    answer(&mut handle, false, list("12", "warn")).await;
    settle().await;
    assert_eq!(config.current().settings.log.level, "warn");
    assert_eq!(config.current().generation, 2);
    assert_eq!((status.get().1, metrics.watcher_restarts.get()), (1, 1));
}
