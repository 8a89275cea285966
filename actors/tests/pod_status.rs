//! The Pod-annotation publisher against a mocked API server, under paused time: it writes nothing until the
//! chart's admission policy refuses dry-run changes outside its annotations, writes only the newest state after a failure, backs off, and
//! waits long after a refusal instead of stopping.

use std::time::Duration;

use brokkr_config::{ReloadableConfig, Settings};
use brokkr_reload::{
    history::{ReloadHistory, ReloadRecord},
    messages::Trigger,
    pod_status::{MIN_WRITE_INTERVAL, PodStatus, REFUSED_RETRY},
};
use http::{Request, Response, StatusCode};
use kube::{Client, client::Body};
use tokio::time::Instant;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const POD: &str = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"broker-a\"}}";

fn status(code: u16, message: &str) -> Response<Body> {
    let body = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"Status\",\"status\":\"Failure\",\"code\":{code},\"message\":\"{message}\"}}"
    );
    Response::builder()
        .status(StatusCode::from_u16(code).expect("code"))
        .body(Body::from(body.into_bytes()))
        .expect("a response")
}

const POLICY: &str = "brokkr-broker-brokkr-pod-status";

/// The API server's answer when ValidatingAdmissionPolicy `policy` denies a request on broker-a (as
/// k8s.io/apiserver's policy dispatcher words it).
fn denial(policy: &str, says: &str) -> Response<Body> {
    let cause = format!("ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: {says}");
    let body = serde_json::json!({ "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 403,
        "reason": "Forbidden", "message": format!("pods \"broker-a\" is forbidden: {cause}"),
        "details": { "name": "broker-a", "kind": "pods", "causes": [{ "message": cause }] } });
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .body(Body::from(body.to_string().into_bytes()))
        .expect("a response")
}

/// The chart's policy refusing a forbidden change.
fn guard() -> Response<Body> {
    denial(POLICY, "a broker may change only the seven config.brokkr.io/ annotations it owns")
}

/// Answers one whole round of the check (three dry runs) with `answer`; when it began.
async fn round(handle: &mut Handle, answer: impl Fn() -> Response<Body>) -> Instant {
    let mut began = None;
    for i in 0..3 {
        let (dry, body, at) = next(handle, answer()).await;
        assert!(dry, "probe {i}: {body}");
        began.get_or_insert(at);
    }
    began.expect("three dry runs")
}

fn ok() -> Response<Body> {
    Response::builder().body(Body::from(POD.as_bytes().to_vec())).expect("a response")
}

/// The next request: whether it is a dry run, and its body.
async fn next(handle: &mut Handle, answer: Response<Body>) -> (bool, String, Instant) {
    // Bounded (in paused time): a publisher that gave up would otherwise leave the test waiting forever.
    let next = tokio::time::timeout(Duration::from_secs(3600), handle.next_request()).await;
    let (request, respond) = next.expect("a request within the hour").expect("a request");
    let uri = request.uri().to_string();
    assert!(uri.starts_with("/api/v1/namespaces/brokkr/pods/broker-a?"), "{uri}");
    let body = request.into_body().collect_bytes().await.expect("body");
    respond.send_response(answer);
    (uri.contains("dryRun=All"), String::from_utf8_lossy(&body).into_owned(), Instant::now())
}

fn record(rv: &str, max_age: &str) -> ReloadRecord {
    let mut record = ReloadRecord::new(Trigger::Watch, brokkr_config::Outcome::Applied, Vec::new());
    record.resource_version = Some(rv.to_owned());
    record.hash = max_age.to_owned();
    record
}

#[tokio::test(start_paused = true)]
async fn it_waits_for_the_guard_writes_the_newest_state_backs_off_and_never_gives_up() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let history = ReloadHistory::default();
    history.record(record("1", "a"), 20);
    let config = ReloadableConfig::new(Settings::default());
    let publisher = PodStatus::new(Client::new(service, "brokkr"), "brokkr", "broker-a");
    tokio::spawn(publisher.publish(POLICY.to_owned(), history.clone(), config));

    // The policy is not enforced yet: the dry run is admitted, and tried again 2 s later, until it is refused.
    let (dry, body, first) = next(&mut handle, ok()).await;
    assert!(dry && body.contains("labels"), "{body}");
    let second = round(&mut handle, guard).await;
    assert!(second - first >= Duration::from_secs(2));

    // The first write fails; meanwhile a newer record arrives: the retry writes the newest state only.
    let (dry, body, failed_at) = next(&mut handle, status(500, "etcd is slow")).await;
    assert!(!dry && body.contains("\"config.brokkr.io/seen\":\"1\""), "{body}");
    history.record(record("2", "b"), 20);
    let (_, body, retried_at) = next(&mut handle, ok()).await;
    assert!(body.contains("\"config.brokkr.io/seen\":\"2\"") && !body.contains("\"1\""), "{body}");
    assert!(retried_at - failed_at >= Duration::from_secs(1), "backed off");

    // Two records in quick succession: written at most every MIN_WRITE_INTERVAL, the newest one.
    history.record(record("3", "c"), 20);
    history.record(record("4", "d"), 20);
    let (_, body, written_at) = next(&mut handle, ok()).await;
    assert!(written_at - retried_at >= MIN_WRITE_INTERVAL, "{:?}", written_at - retried_at);
    assert!(body.contains("\"config.brokkr.io/seen\":\"4\""), "{body}");

    // A refusal (the Pod is gone, say) is tried again after minutes, not every second, and not abandoned.
    tokio::time::sleep(MIN_WRITE_INTERVAL).await;
    history.record(record("5", "e"), 20);
    let (_, _, refused_at) = next(&mut handle, status(404, "pods broker-a not found")).await;
    let (_, body, again_at) = next(&mut handle, ok()).await;
    assert!(again_at - refused_at >= Duration::from_secs(600), "{:?}", again_at - refused_at);
    assert!(body.contains("\"config.brokkr.io/seen\":\"5\""), "{body}");
}

#[tokio::test(start_paused = true)]
async fn a_guard_check_that_fails_for_another_reason_is_tried_again_before_anything_is_written() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let history = ReloadHistory::default();
    history.record(record("1", "a"), 20);
    let publisher = PodStatus::new(Client::new(service, "brokkr"), "brokkr", "broker-a");
    tokio::spawn(publisher.publish(POLICY.to_owned(), history.clone(), ReloadableConfig::new(Settings::default())));

    // An API server that cannot answer says nothing about the policy: the dry run is tried again, backing off.
    let (dry, _, first) = next(&mut handle, status(503, "the API server is shutting down")).await;
    let (dry_again, _, second) = next(&mut handle, status(500, "etcd request timed out")).await;
    assert!(dry && dry_again, "still checking the guard");
    let (dry, _, third) = next(&mut handle, status(429, "too many requests")).await;
    assert!(dry && second - first >= Duration::from_secs(2) && third - second >= second - first);
    // A refusal by RBAC (a Role still being applied) says nothing about the policy either: asked again later.
    let rbac = round(&mut handle, || status(403, "pods \"broker-a\" is forbidden: cannot patch resource")).await;
    let (dry_again, _, after_rbac) = next(&mut handle, status(503, "unavailable")).await;
    assert!(dry && dry_again && after_rbac - rbac >= REFUSED_RETRY, "{:?}", after_rbac - rbac);
    // Admitted after an outage longer than the policy's grace minute: still given that minute (every 2 s).
    let (dry, _, admitted) = next(&mut handle, ok()).await;
    let (dry_again, _, again) = next(&mut handle, ok()).await;
    assert!(dry && dry_again && again - admitted < Duration::from_secs(10), "{:?}", again - admitted);
    // Only the policy's refusal ends the check; then the state is written.
    round(&mut handle, guard).await;
    let (dry, body, _) = next(&mut handle, ok()).await;
    assert!(!dry && body.contains("\"config.brokkr.io/seen\":\"1\""), "{body}");
}

#[tokio::test(start_paused = true)]
async fn only_the_charts_policy_counts_and_every_forbidden_change_must_be_refused() {
    // Issue 23: any 4xx naming "ValidatingAdmissionPolicy" passed, so a cluster-wide policy that forbids label
    // edits stood in for the chart's missing one.
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let history = ReloadHistory::default();
    history.record(record("1", "a"), 20);
    let publisher = PodStatus::new(Client::new(service, "brokkr"), "brokkr", "broker-a");
    tokio::spawn(publisher.publish(POLICY.to_owned(), history.clone(), ReloadableConfig::new(Settings::default())));
    // A decoy refuses all three, its message even quoting the chart's policy: no proof. The API server names only
    // the first policy that denied, in an order that changes, so it is asked again soon (backing off).
    let quoting = format!("frozen (ValidatingAdmissionPolicy '{POLICY}' with binding '{POLICY}' denied request: x)");
    let mut bodies = Vec::new();
    let mut decoy_at = None;
    for _ in 0..3 {
        let (dry, body, at) = next(&mut handle, denial("decoy-frozen-labels", &quoting)).await;
        assert!(dry);
        bodies.push(body);
        decoy_at = Some(at);
    }
    assert!(bodies[0].contains("\"labels\"") && bodies[1].contains("\"brokkr.io/guard-check\""), "{bodies:?}");
    assert!(bodies[2].contains("\"config.brokkr.io/guard-check\""), "{bodies:?}");
    // Found by review: with a fixed value, a key someone already set to it made the dry run a no-op, which the
    // policy admits (a foreign key may stay as it is): every round asks for a value that cannot already be there.
    let value = |body: &str| body.rsplit(':').next().unwrap_or_default().trim_matches(|c| "\"}".contains(c)).to_owned();
    assert_ne!(value(&bodies[0]), "1", "{bodies:?}");
    // The chart's policy refuses the label change but the annotation is admitted: no proof, again 2 s later.
    let (dry, again_body, again) = next(&mut handle, guard()).await;
    assert_ne!(value(&again_body), value(&bodies[0]), "the same value twice: {again_body} {}", bodies[0]);
    let waited = again - decoy_at.expect("asked");
    assert!(dry && waited >= Duration::from_secs(2) && waited < REFUSED_RETRY, "{waited:?}");
    let (dry, _, admitted) = next(&mut handle, ok()).await;
    let next_round = round(&mut handle, guard).await;
    assert!(dry && next_round - admitted >= Duration::from_secs(2));
    // Then the state is written.
    let (dry, body, _) = next(&mut handle, ok()).await;
    assert!(!dry && body.contains("\"config.brokkr.io/seen\":\"1\""), "{body}");
}

#[tokio::test(start_paused = true)]
async fn a_webhook_that_quotes_the_policys_denial_is_no_proof() {
    // Found by review: a webhook's message (whose text a policy author sets) may quote the chart's policy.
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let history = ReloadHistory::default();
    history.record(record("1", "a"), 20);
    let publisher = PodStatus::new(Client::new(service, "brokkr"), "brokkr", "broker-a");
    tokio::spawn(publisher.publish(POLICY.to_owned(), history.clone(), ReloadableConfig::new(Settings::default())));
    let quoted = format!(
        "admission webhook \\\"kyverno\\\" denied the request: pods \\\"broker-a\\\" is forbidden: ValidatingAdmissionPolicy '{POLICY}' with binding '{POLICY}' denied request: x"
    );
    let webhook = round(&mut handle, || status(403, &quoted)).await;
    // Not the policy: a refusal of another kind, asked again only after REFUSED_RETRY.
    let (dry, _, again) = next(&mut handle, guard()).await;
    assert!(dry && again - webhook >= REFUSED_RETRY, "{:?}", again - webhook);
}
