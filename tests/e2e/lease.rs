//! The rollout's Lease on a real API server: one holder at a time, renewal keeps it, a release hands it over at
//! once, a lapsed holder is replaced only after the lease's duration plus the skew allowance on the candidate's
//! own clock, each takeover raises the term, and two candidates racing for a free Lease never both hold it.

use std::time::{Duration, Instant};

use brokkr_e2e::Cluster;
use brokkr_reload::lease::{Attempt, LeaseLock, SKEW_ALLOWANCE};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, api::PostParams};

const LEASE: &str = "brokkr-broker";
const DURATION: Duration = Duration::from_secs(3);

fn term(attempt: &Attempt) -> Option<i32> {
    match attempt {
        Attempt::Holds { term, .. } => Some(*term),
        Attempt::Taken { .. } => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_at_a_time_handed_over_on_release_and_taken_over_only_after_it_lapsed() {
    let cluster = Cluster::start("lease").await;
    let leases: Api<Lease> = Api::namespaced(cluster.admin.clone(), "lease");
    let mut empty = Lease::default();
    empty.metadata.name = Some(LEASE.into());
    leases.create(&PostParams::default(), &empty).await.expect("the chart's empty Lease");
    let lock = |who: &str| LeaseLock::new(leases.clone(), LEASE.into(), who.into(), DURATION);
    let (mut a, mut b) = (lock("broker-a"), lock("broker-b"));

    let first = a.try_acquire_or_renew().await.expect("a asks");
    assert_eq!(term(&first), Some(1), "{first:?}");
    assert_eq!(b.try_acquire_or_renew().await.expect("b asks"), Attempt::Taken { holder: "broker-a".into() });
    assert_eq!(term(&a.try_acquire_or_renew().await.expect("a renews")), Some(1), "a renewal keeps the term");
    assert!(a.holds(tokio::time::Instant::now()));

    a.release().await.expect("a releases");
    assert!(!a.holds(tokio::time::Instant::now()));
    assert_eq!(term(&b.try_acquire_or_renew().await.expect("b asks")), Some(2), "handed over at once");

    // b stops renewing. a sees b's renew time stay put and waits out the duration and the skew allowance.
    let seen = Instant::now();
    assert!(matches!(a.try_acquire_or_renew().await.expect("a asks"), Attempt::Taken { .. }));
    let taken_over = loop {
        match a.try_acquire_or_renew().await.expect("a asks") {
            Attempt::Holds { term, .. } => break term,
            Attempt::Taken { .. } => {
                assert!(seen.elapsed() < DURATION * 5, "not taken over within {:?}", DURATION * 5);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let waited = seen.elapsed();
    println!("e2e lease: taken over {} ms after the holder stopped renewing", waited.as_millis());
    assert!(waited >= DURATION + SKEW_ALLOWANCE, "never before the lease lapsed here: {waited:?}");
    assert_eq!(taken_over, 3, "each takeover raises the term");
    assert!(!b.holds(tokio::time::Instant::now() + DURATION), "b's own clock says it no longer holds");

    // A free Lease, two candidates at once: one holds it, the other is told it is taken or loses the write (409).
    a.release().await.expect("a releases");
    let (mut c, mut d) = (lock("broker-c"), lock("broker-d"));
    let (c_got, d_got) = tokio::join!(c.try_acquire_or_renew(), d.try_acquire_or_renew());
    let holders = [c_got, d_got].iter().filter(|got| got.as_ref().is_ok_and(|a| term(a).is_some())).count();
    assert_eq!(holders, 1, "exactly one holder");
}
