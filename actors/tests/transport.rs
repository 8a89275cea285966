//! The broker's own HTTP stack keeps what kube's stack does: base URI, a token from its file, impersonation and
//! extra headers; it reports the HTTP version the server answered in, bounds every response's head, and refuses a
//! proxy it would not use.

use std::{io::Write as _, sync::Arc, time::Duration};

use brokkr_reload::{
    messages::ConfigMapState,
    source::{
        ConfigMapSource, KubeConfigMapSource, WATCH_TIMEOUT_MAX_SECS, WATCH_TIMEOUT_MIN_SECS, random_watch_timeout,
    },
    transport::{self, RESPONSE_HEAD_TIMEOUT},
};
use http::{HeaderName, HeaderValue};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, api::ListParams, client::Body};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::mpsc,
};

const CONFIGMAP: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"brokkr","namespace":"ns","resourceVersion":"7"},"data":{"broker.toml":""}}"#;

/// Answers every request on 127.0.0.1 with `CONFIGMAP` over HTTP/1.1 and sends each request's head to the channel.
async fn server() -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/prefix", listener.local_addr().expect("address"));
    let (heads, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0_u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = heads.send(String::from_utf8_lossy(&head).to_lowercase());
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{CONFIGMAP}",
                    CONFIGMAP.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, received)
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_answer_never_comes_fails_after_the_response_head_timeout() {
    // A server that takes the request and never answers: a frozen pooled HTTP/1.1 connection, or an HTTP/2 peer
    // that answers PINGs but not the stream. kube-runtime's list and watch start have no bound of their own.
    let (service, mut handle) = tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(request) = handle.next_request().await {
            held.push(request);
        }
    });
    let config = kube::Config::new("https://127.0.0.1:6443".parse().expect("url"));
    let (client, _) = transport::client_over(&config, service).expect("client");
    let api: Api<ConfigMap> = Api::namespaced(client, "ns");
    let started = tokio::time::Instant::now();
    let outcome = tokio::time::timeout(RESPONSE_HEAD_TIMEOUT * 10, api.list(&ListParams::default())).await;
    let waited = started.elapsed();
    assert!(matches!(outcome, Ok(Err(_))), "the list must fail, not hang: {outcome:?}");
    assert!(waited >= RESPONSE_HEAD_TIMEOUT && waited < RESPONSE_HEAD_TIMEOUT + Duration::from_secs(1), "{waited:?}");
    held.abort();
}

#[test]
fn a_kubeconfig_that_names_a_proxy_is_refused_without_showing_it() {
    let mut config = kube::Config::new("https://127.0.0.1:6443".parse().expect("url"));
    config.proxy_url = Some("http://user:hunter2@proxy.example:3128".parse().expect("proxy url"));
    let error = transport::client(config).map(|_| ()).expect_err("a proxy is refused");
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("http proxy"), "{shown}");
    assert!(!shown.contains("hunter2") && !shown.contains("proxy.example"), "{shown}");
}

#[tokio::test]
async fn the_custom_stack_keeps_base_uri_token_file_impersonation_and_extra_headers() {
    let (url, mut heads) = server().await;
    let mut token = tempfile::NamedTempFile::new().expect("token file");
    write!(token, "first-token-value").expect("write the token");
    let mut config = kube::Config::new(url.parse().expect("url"));
    config.auth_info.token_file = Some(token.path().display().to_string());
    config.auth_info.impersonate = Some("someone".into());
    config.headers = vec![(HeaderName::from_static("x-brokkr-test"), HeaderValue::from_static("yes"))];
    let (client, protocol) = transport::client(config).expect("client");
    assert_eq!(protocol.name(), None, "no answer yet");

    let source: Arc<dyn ConfigMapSource> = Arc::new(KubeConfigMapSource::new(client, "ns", "brokkr"));
    let ConfigMapState::Present(version) = source.read().await.expect("read") else { panic!("present") };
    assert_eq!(version.resource_version.as_deref(), Some("7"));
    let head = heads.recv().await.expect("a request");
    assert!(head.starts_with("get /prefix/api/v1/namespaces/ns/configmaps/brokkr "), "{head}");
    assert!(head.contains("authorization: bearer first-token-value\r\n"), "{head}");
    assert!(head.contains("impersonate-user: someone\r\n"), "{head}");
    assert!(head.contains("x-brokkr-test: yes\r\n"), "{head}");
    assert_eq!(protocol.name(), Some("HTTP/1.1"), "a plain-HTTP server answers in HTTP/1.1");
}

#[test]
fn watch_timeouts_are_spread_over_the_whole_range() {
    let drawn: Vec<u32> = (0..2000).map(|_| random_watch_timeout()).collect();
    assert!(drawn.iter().all(|t| (WATCH_TIMEOUT_MIN_SECS..=WATCH_TIMEOUT_MAX_SECS).contains(t)), "{drawn:?}");
    let (low, high) = (drawn.iter().min().copied(), drawn.iter().max().copied());
    // 2000 draws from 101 values: each end is missed with probability (100/101)^2000, about 2e-9.
    assert_eq!((low, high), (Some(WATCH_TIMEOUT_MIN_SECS), Some(WATCH_TIMEOUT_MAX_SECS)));
}
