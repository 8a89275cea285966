//! A staged rollout on replicas a kubelet runs: a harmful edit fails the traffic gate on the first wave and is
//! rolled back, and a replica the kubelet restarts meanwhile starts on the last good configuration; then a healthy
//! edit goes wave by wave, promoted by an operator.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use brokkr_reload::rollout_status::Phase;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::{
    chart::{NAMESPACE, RELEASE, Walkthrough},
    kubelet::{broker_pid, eventually, is_ready, name, pod_ip, ready_pods, restarts},
    real_pods::{CHART, Release},
    staged::{CLIENT, applied, document, hash, says_it_runs, set_document, traffic, wait_for},
};

const WAIT: Duration = Duration::from_secs(120);

/// The text each broker Pod says it runs, by Pod name.
async fn running(pods: &Api<Pod>) -> Vec<(String, String)> {
    crate::kubelet::broker_pods(pods).await.iter().map(|p| (name(p), says_it_runs(p))).collect()
}

/// Turns the staged rollout on (a Deployment roll onto three new replicas), then makes a harmful edit.
pub async fn staged_rollout_on_real_replicas(w: &Walkthrough, release: &Release, pods: &Api<Pod>) {
    let before: Vec<String> = ready_pods(pods, 3).await.expect("three replicas").iter().map(name).collect();
    let values = w.dir().join("staged-values.yaml");
    let staged = format!(
        "rollout: {{enabled: true, steps: [\"1\", \"50%\", \"100%\"], bake: 60s, minRequests: 5, maxErrorRatio: 0.2}}\n\
         config: {{cors: {{allowed_origins: [\"{CLIENT}\"]}}}}\n"
    );
    std::fs::write(&values, staged).expect("write values");
    let upgrade = ["upgrade", RELEASE, CHART, "-n", NAMESPACE, "--reuse-values", "-f"];
    let started = Instant::now();
    w.helm(&[&upgrade[..], &[values.to_str().expect("path")]].concat()).await.ok("helm upgrade: staged rollout on");
    let ready = eventually("three new replicas Ready", WAIT, || async {
        ready_pods(pods, 3).await.filter(|now| now.iter().all(|p| !before.contains(&name(p))))
    })
    .await;
    println!("e2e pod network: rolled onto 3 replicas with the staged rollout in {} ms", started.elapsed().as_millis());
    let good = wait_for(w, "adopt the running text", Duration::from_secs(60), |s| s.last_good.is_some()).await;
    let good = good.last_good.expect("the last good text").hash;

    let harmful = document("https://other.example", "2m");
    let harmful_rv = set_document(w, &harmful).await;
    let started = Instant::now();
    let canary = eventually("the first wave runs the harmful edit", Duration::from_secs(60), || async {
        running(pods).await.into_iter().find(|(_, h)| *h == hash(&harmful)).map(|(n, _)| n)
    })
    .await;
    // A replica outside the first wave, not the coordinator, killed: the kubelet restarts its container. No traffic
    // yet, so the canary's gate cannot decide before the bake (60 s) ends: the rollout is still in its first wave.
    let status = wait_for(w, "a coordinator", Duration::from_secs(5), |s| s.coordinator.is_some()).await;
    let holder = status.coordinator.map(|c| c.holder).unwrap_or_default();
    let victim = ready.iter().map(name).find(|n| *n != canary && *n != holder).expect("a third replica");
    let pid = broker_pid(&victim).expect("the victim's broker process");
    let killed = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    assert!(killed.is_ok_and(|s| s.success()), "kill {pid}");
    let restarted = eventually("the kubelet restarts the killed replica", WAIT, || async {
        let pod = pods.get(&victim).await.ok()?;
        (restarts(&pod) == 1 && is_ready(&pod)).then_some(pod)
    })
    .await;
    let status = release.status(&restarted).await.expect("the restarted replica's status");
    let rollout = wait_for(w, "the rollout's state", Duration::from_secs(5), |_| true).await;
    assert_eq!((rollout.phase, rollout.admitted), (Phase::Progressing, 1), "still in the first wave: {rollout:?}");
    assert_eq!(status["generation"], 0, "a fresh start: {status}");
    assert_eq!(status["settings"]["cors"]["allowed_origins"][0], CLIENT, "it starts on the last good text: {status}");
    println!("e2e pod network: {victim} restarted by the kubelet in the first wave, on the last good text");

    // A browser client on every replica's own address, as a Service would spread it: the canary refuses it.
    let stop = Arc::new(AtomicBool::new(false));
    let urls = ready.iter().map(|p| format!("http://{}:8080/", pod_ip(p).expect("a pod IP"))).collect();
    let client = traffic(urls, stop.clone());
    let traffic_from = Instant::now();
    let rolled_back =
        wait_for(w, "roll the harmful edit back", Duration::from_secs(90), |s| s.phase == Phase::RolledBack).await;
    println!(
        "e2e pod network: harmful edit rolled back {} ms after the client's traffic began ({} ms after the edit)",
        traffic_from.elapsed().as_millis(),
        started.elapsed().as_millis()
    );
    let failure = rolled_back.failed.last().expect("the failure is recorded");
    assert_eq!((failure.gate.as_str(), failure.replica.as_str()), ("traffic", canary.as_str()), "{failure:?}");
    let said = eventually("every replica runs the last good text", Duration::from_secs(30), || async {
        let said = running(pods).await;
        said.iter().all(|(_, h)| *h == good).then_some(said)
    })
    .await;
    assert_eq!(said.len(), 3, "{said:?}");
    for pod in ready_pods(pods, 3).await.expect("three replicas") {
        let status = release.status(&pod).await.expect("status");
        let history = release.history(&pod).await.expect("history");
        let expected = usize::from(name(&pod) == canary);
        assert_eq!(applied(&history, &harmful_rv), expected, "{} applied the harmful edit: {history}", name(&pod));
        assert_eq!(status["settings"]["cors"]["allowed_origins"][0], CLIENT, "{status}");
    }
    let admin = w.cluster.plane.admin_kubeconfig();
    let (code, out) = w.kubectl_brokkr(admin, &["brokkr", "-n", NAMESPACE, "rollout-status"]).await;
    assert_eq!(code, 1, "a rollback ends rollout-status at once: {out}");
    assert!(out.contains(&canary) && out.contains("traffic"), "{out}");

    healthy_waves_promoted(w, pods).await;
    stop.store(true, Ordering::Relaxed);
    client.await.expect("the client");
}

/// A healthy edit through its three waves on the real replicas, each promoted by an operator (the 60 s bake would
/// make the suite wait three minutes): each wave's replicas run the text within seconds of its admission, and the
/// last promotion completes the rollout.
async fn healthy_waves_promoted(w: &Walkthrough, pods: &Api<Pod>) {
    let healthy = document(CLIENT, "3m");
    set_document(w, &healthy).await;
    let started = Instant::now();
    let admin = w.cluster.plane.admin_kubeconfig();
    let mut timings = Vec::new();
    for wave in 1..=3 {
        let status = wait_for(w, "the wave's admission", Duration::from_secs(30), |s| {
            s.phase == Phase::Progressing
                && s.target.as_ref().is_some_and(|t| t.hash == hash(&healthy))
                && s.admitted == wave
        })
        .await;
        // Wave `wave + 1` cannot be admitted on its own meanwhile: its bake (60 s) is longer than these waits.
        let members: Vec<String> = status.waves.iter().take(wave).flatten().map(|m| m.name.clone()).collect();
        let running_it = eventually("the admitted replicas run the edit", Duration::from_secs(30), || async {
            let said = running(pods).await;
            let run = said.iter().filter(|(n, h)| members.contains(n) && *h == hash(&healthy)).count();
            (run == members.len()).then(|| said.iter().filter(|(_, h)| *h == hash(&healthy)).count())
        })
        .await;
        // And no replica outside the admitted waves runs it.
        assert_eq!(running_it, members.len(), "wave {wave}: {:?}", running(pods).await);
        timings.push((wave, running_it, started.elapsed()));
        let (code, out) = w.kubectl_brokkr(admin, &["brokkr", "-n", NAMESPACE, "rollout", "promote"]).await;
        assert_eq!(code, 0, "promote wave {wave}: {out}");
    }
    let done =
        wait_for(w, "complete the healthy rollout", Duration::from_secs(30), |s| s.phase == Phase::Complete).await;
    assert_eq!(done.last_good.map(|g| g.hash), Some(hash(&healthy)), "the edit is the last good text");
    let said = running(pods).await;
    assert!(said.len() == 3 && said.iter().all(|(_, h)| *h == hash(&healthy)), "{said:?}");
    println!(
        "e2e pod network: healthy edit through its waves, each promoted: (wave, replicas running it, since the edit) \
         {timings:?}; complete after {} ms",
        started.elapsed().as_millis()
    );
}
