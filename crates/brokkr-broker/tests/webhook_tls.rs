//! The webhook over real TLS: answers reviews and serves a renewed certificate, never a broken one.

use std::{net::SocketAddr, path::Path, sync::Arc};

use brokkr_broker::{
    admission::{ConfigMapReviewer, ReviewMetrics},
    webhook,
};
use brokkr_config::{ConfigLayers, ReloadableConfig, settings::WebhookSettings};
use prometheus_client::registry::Registry;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{
    TlsConnector,
    rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName},
};

/// A CA and a serving certificate it signed for 127.0.0.1, as PEM: (ca, cert, key).
fn issue() -> (String, String, String) {
    issue_valid(None)
}

/// As [`issue`], with the leaf's validity window `(not_before, not_after)` if given.
fn issue_valid(window: Option<(time::OffsetDateTime, time::OffsetDateTime)>) -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca_pem = ca.self_signed(&ca_key).expect("CA").pem();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
    leaf.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    if let Some((not_before, not_after)) = window {
        (leaf.not_before, leaf.not_after) = (not_before, not_after);
    }
    let leaf_key = KeyPair::generate().expect("key");
    let leaf_pem = leaf.signed_by(&leaf_key, &issuer).expect("leaf").pem();
    (ca_pem, leaf_pem, leaf_key.serialize_pem())
}

/// Replaces `path` atomically (a new file renamed over it), as kubelet does when a Secret changes.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// POSTs `body` to the webhook over TLS, trusting only `ca`; the status code and body, or the handshake error.
async fn post(addr: SocketAddr, ca: &str, body: &str) -> Result<(u16, String), String> {
    let mut roots = RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        webhook::PATH,
        body.len()
    );
    tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await.map_err(|e| e.to_string())?;
    let status = response.get(9..12).and_then(|s| s.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

fn review(document: &str) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": "brokkr-broker", "namespace": "brokkr", "operation": "UPDATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "brokkr-broker", "namespace": "brokkr"},
                       "data": {"broker.toml": document}},
            "dryRun": false
        }
    })
    .to_string()
}

#[actix_rt::test]
async fn the_webhook_answers_over_tls_and_serves_a_renewed_certificate_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca1, cert1, key1) = issue();
    let (ca2, cert2, key2) = issue();
    let settings = WebhookSettings {
        enabled: true,
        listen: "127.0.0.1:0".parse().expect("addr"),
        cert_file: dir.path().join("tls.crt"),
        key_file: dir.path().join("tls.key"),
    };
    replace(&settings.cert_file, &cert1);
    replace(&settings.key_file, &key1);
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let metrics = ReviewMetrics::register(&mut Registry::default());
    let reviewer = ConfigMapReviewer::new(layers, config, Some("brokkr".into()), metrics);
    let (server, addrs) = webhook::server(&settings, reviewer).expect("starts");
    let handle = server.handle();
    actix_rt::spawn(server);
    let addr = addrs[0];

    let (status, body) = post(addr, &ca1, &review("[cors]\nmax_age = \"soon\"")).await.expect("TLS with CA 1");
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "u-1");
    assert_eq!(answer["response"]["allowed"], false);
    assert!(answer["response"]["status"]["message"].as_str().is_some_and(|m| m.contains("cors.max_age")), "{body}");

    let (status, body) = post(addr, &ca1, "{\"not\": \"a review\"").await.expect("TLS");
    assert_eq!(status, 400, "{body}");
    assert!(post(addr, &ca2, &review("")).await.is_err(), "CA 2 is not served yet");

    // Half-way through a renewal the certificate is new and the key old: the pair does not load, and the
    // previous certificate keeps serving.
    replace(&settings.cert_file, &cert2);
    let (status, _) = post(addr, &ca1, &review("")).await.expect("still CA 1 while the pair is mismatched");
    assert_eq!(status, 200);

    replace(&settings.key_file, &key2);
    let (status, body) = post(addr, &ca2, &review("[log]\nlevel = \"debug\"")).await.expect("CA 2 after renewal");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON")["response"]["allowed"], true);
    assert!(post(addr, &ca1, &review("")).await.is_err(), "the old certificate is no longer served");
    handle.stop(true).await;
}

#[actix_rt::test]
async fn the_webhook_starts_without_its_certificate_and_serves_once_it_appears() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = issue();
    let settings = WebhookSettings {
        enabled: true,
        listen: "127.0.0.1:0".parse().expect("addr"),
        cert_file: dir.path().join("tls.crt"),
        key_file: dir.path().join("tls.key"),
    };
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let metrics = ReviewMetrics::register(&mut Registry::default());
    let reviewer = ConfigMapReviewer::new(layers, config, None, metrics);
    let (server, addrs) = webhook::server(&settings, reviewer).expect("starts without the files");
    let handle = server.handle();
    actix_rt::spawn(server);
    assert!(post(addrs[0], &ca, &review("")).await.is_err(), "no certificate yet");
    replace(&settings.cert_file, &cert);
    replace(&settings.key_file, &key);
    let (status, _) = post(addrs[0], &ca, &review("")).await.expect("serves once the files exist");
    assert_eq!(status, 200);
    handle.stop(true).await;
}

#[actix_rt::test]
async fn a_renewal_outside_its_validity_window_never_replaces_a_good_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = issue();
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let expired = issue_valid(Some((now - day * 30, now - day)));
    let not_yet = issue_valid(Some((now + day, now + day * 30)));
    let settings = WebhookSettings {
        enabled: true,
        listen: "127.0.0.1:0".parse().expect("addr"),
        cert_file: dir.path().join("tls.crt"),
        key_file: dir.path().join("tls.key"),
    };
    replace(&settings.cert_file, &cert);
    replace(&settings.key_file, &key);
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let metrics = ReviewMetrics::register(&mut Registry::default());
    let (server, addrs) =
        webhook::server(&settings, ConfigMapReviewer::new(layers, config, None, metrics)).expect("starts");
    let handle = server.handle();
    actix_rt::spawn(server);
    for (_, bad_cert, bad_key) in [expired, not_yet] {
        replace(&settings.cert_file, &bad_cert);
        replace(&settings.key_file, &bad_key);
        let (status, _) = post(addrs[0], &ca, &review("")).await.expect("the good certificate is still served");
        assert_eq!(status, 200);
    }
    handle.stop(true).await;
}
