//! The webhook over real TLS: answers reviews and serves a renewed certificate, never a broken one.

mod support;

use brokkr_broker::{
    admission::{ConfigMapReviewer, ReviewMetrics},
    tls::CertificateGauge,
    webhook,
};
use brokkr_config::{ConfigLayers, ReloadableConfig, settings::WebhookSettings};
use prometheus_client::registry::Registry;
use serde_json::Value;
use support::{issue, issue_valid, post, replace, review};

#[actix_rt::test]
async fn the_webhook_answers_over_tls_and_serves_a_renewed_certificate_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca1, cert1, key1) = issue();
    let (ca2, cert2, key2) = issue();
    let settings = settings_in(dir.path());
    replace(&settings.cert_file, &cert1);
    replace(&settings.key_file, &key1);
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let metrics = ReviewMetrics::register(&mut Registry::default());
    let reviewer = ConfigMapReviewer::new(layers, config, Some("brokkr".into()), metrics);
    let (server, addrs) = webhook::server(&settings, reviewer, CertificateGauge::default()).expect("starts");
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
    let settings = settings_in(dir.path());
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let metrics = ReviewMetrics::register(&mut Registry::default());
    let reviewer = ConfigMapReviewer::new(layers, config, None, metrics);
    let (server, addrs) =
        webhook::server(&settings, reviewer, CertificateGauge::default()).expect("starts without the files");
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
    let settings = settings_in(dir.path());
    replace(&settings.cert_file, &cert);
    replace(&settings.key_file, &key);
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let metrics = ReviewMetrics::register(&mut Registry::default());
    let (server, addrs) =
        webhook::server(&settings, ConfigMapReviewer::new(layers, config, None, metrics), CertificateGauge::default())
            .expect("starts");
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

/// Webhook settings that serve the files in `dir` on a free port; every other field keeps its default.
fn settings_in(dir: &std::path::Path) -> WebhookSettings {
    let mut settings = WebhookSettings { enabled: true, ..WebhookSettings::default() };
    settings.listen = "127.0.0.1:0".parse().expect("addr");
    settings.cert_file = dir.join("tls.crt");
    settings.key_file = dir.join("tls.key");
    settings
}

fn start(settings: &WebhookSettings, gauge: CertificateGauge) -> (actix_web::dev::ServerHandle, std::net::SocketAddr) {
    let layers = ConfigLayers::new();
    let config = ReloadableConfig::new(layers.build(None).expect("defaults").settings);
    let metrics = ReviewMetrics::register(&mut Registry::default());
    let reviewer = ConfigMapReviewer::new(layers, config, None, metrics);
    let (server, addrs) = webhook::server(settings, reviewer, gauge).expect("starts");
    let handle = server.handle();
    actix_rt::spawn(server);
    (handle, addrs[0])
}

/// A webhook serving a certificate valid from `not_before` to `not_after` (offsets from now), with its gauge; the
/// folder of its files lives as long as the returned guard.
struct Windowed {
    ca: String,
    handle: actix_web::dev::ServerHandle,
    addr: std::net::SocketAddr,
    gauge: CertificateGauge,
    _dir: tempfile::TempDir,
}

fn serve_window(not_before: time::Duration, not_after: time::Duration) -> Windowed {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = time::OffsetDateTime::now_utc();
    let (ca, cert, key) = issue_valid(Some((now + not_before, now + not_after)));
    let settings = settings_in(dir.path());
    replace(&settings.cert_file, &cert);
    replace(&settings.key_file, &key);
    let gauge = CertificateGauge::default();
    let (handle, addr) = start(&settings, gauge.clone());
    Windowed { ca, handle, addr, gauge, _dir: dir }
}

/// Waits, without any handshake, until the gauge reads `value` (40 s at most).
async fn gauge_becomes(gauge: &CertificateGauge, value: i64, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while gauge.value() != value {
        assert!(std::time::Instant::now() < deadline, "{what}");
        actix_rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[actix_rt::test]
async fn a_certificate_a_few_minutes_ahead_of_this_clock_is_served() {
    // Helm's genSignedCert stamps NotBefore with the clock of the machine that ran helm.
    let w = serve_window(time::Duration::minutes(2), time::Duration::days(30));
    assert_eq!(w.gauge.value(), 1, "loaded at start");
    let (status, _) = post(w.addr, &w.ca, &review("")).await.expect("served despite the skew");
    assert_eq!(status, 200);
    w.handle.stop(true).await;
}

#[actix_rt::test]
async fn a_certificate_not_yet_valid_is_served_once_it_is_without_the_files_changing() {
    // Valid (with the skew tolerated) ten seconds from now: room for the start and the first handshake.
    let skew = time::Duration::seconds(brokkr_broker::tls::CLOCK_SKEW.as_secs().try_into().expect("small"));
    let w = serve_window(skew + time::Duration::seconds(10), time::Duration::days(30));
    assert_eq!(w.gauge.value(), 0, "not valid yet");
    assert!(post(w.addr, &w.ca, &review("")).await.is_err(), "no certificate is served yet");
    // No handshake from here on: the timer alone loads it once it is valid.
    gauge_becomes(&w.gauge, 1, "never loaded without a handshake").await;
    let (status, _) = post(w.addr, &w.ca, &review("")).await.expect("served once valid");
    assert_eq!(status, 200);
    w.handle.stop(true).await;
}

#[actix_rt::test]
async fn a_served_certificate_that_expires_sets_the_gauge_to_0() {
    // Valid for 10 more seconds: room for the start on a loaded machine.
    let w = serve_window(-time::Duration::days(1), time::Duration::seconds(10));
    assert_eq!(w.gauge.value(), 1, "valid for a few more seconds");
    gauge_becomes(&w.gauge, 0, "the gauge never noticed the expiry").await;
    w.handle.stop(true).await;
}
