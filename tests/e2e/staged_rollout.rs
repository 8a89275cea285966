//! The staged rollout on a real API server: four brokers on Pod objects with pod-bound tokens, installed by the
//! chart with `rollout.enabled`, each with traffic from a browser client. A healthy change goes through every wave,
//! each after its bake; a harmful one (the client's origin dropped) fails the traffic gate on the first wave and is
//! rolled back by itself, the other replicas never apply it, and a replica restarted afterwards starts on the last
//! good configuration.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use brokkr_e2e::{
    chart::{NAMESPACE, RELEASE, Walkthrough},
    pods::create_ready_pod,
    staged::{
        CLIENT, PODS, applied, document, hash, running, set_document, start_pod_broker, traffic, wait_for,
        wait_until_running,
    },
};
use brokkr_reload::{rollout_objects::rollouts, rollout_status::Phase};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

const BAKE: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_change_goes_wave_by_wave_and_a_harmful_one_is_rolled_back_from_the_first_wave() {
    let w = Walkthrough::start().await;
    w.kubectl(&["create", "namespace", NAMESPACE]).await.ok("create namespace");
    let install = ["install", RELEASE, "charts/brokkr-broker", "-n", NAMESPACE];
    let values = ["--set", "podStatus.enabled=true", "--set", "rollout.enabled=true"];
    w.helm(&[&install[..], &values[..]].concat()).await.ok("helm install");
    let first = document(CLIENT, "1m");
    set_document(&w, &first).await;
    let pods = Api::<Pod>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let mut brokers = Vec::new();
    let mut uids = Vec::new();
    for name in PODS {
        let uid = create_ready_pod(&pods, name).await;
        brokers.push(Some(start_pod_broker(&w, name, &uid, "4s").await));
        uids.push(uid);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let urls = brokers.iter().flatten().map(|b| b.url("/healthz")).collect();
    let client = traffic(urls, stop.clone());

    // The coordinator adopts the text every ready replica runs as the last good one.
    let adopted = wait_for(&w, "adopt the first text", Duration::from_secs(60), |s| s.last_good.is_some()).await;
    assert_eq!(adopted.last_good.map(|g| g.hash), Some(hash(&first)), "{}", adopted.reason);

    // A healthy change: wave 1 (one replica), wave 2 (one more), wave 3 (the other two), each after its bake.
    let healthy = document(CLIENT, "2m");
    let started = Instant::now();
    set_document(&w, &healthy).await;
    let progressing = wait_for(&w, "start a rollout", Duration::from_secs(30), |s| s.phase == Phase::Progressing).await;
    let rollout_started = started.elapsed();
    assert_eq!(progressing.waves.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 2]);
    let mut admitted_at = vec![rollout_started];
    for wave in 2..=3 {
        wait_for(&w, "admit the next wave", Duration::from_secs(60), |s| s.admitted >= wave).await;
        admitted_at.push(started.elapsed());
    }
    let done = wait_for(&w, "complete the healthy rollout", Duration::from_secs(90), |s| {
        s.phase == Phase::Complete && s.last_good.as_ref().is_some_and(|g| g.hash == hash(&healthy))
    })
    .await;
    let took = started.elapsed();
    admitted_at.push(took);
    let overheads: Vec<u128> = admitted_at.windows(2).map(|w| (w[1] - w[0]).saturating_sub(BAKE).as_millis()).collect();
    println!(
        "e2e staged rollout: edit to complete through 3 waves of a {BAKE:?} bake in {} ms; rollout started after {} \
         ms; overhead per wave beyond the bake {overheads:?} ms",
        took.as_millis(),
        rollout_started.as_millis()
    );
    assert!(took >= BAKE * 3, "each of the three waves baked: {took:?} ({})", done.reason);
    for (name, runs) in running(&pods).await {
        assert_eq!(runs, hash(&healthy), "{name} runs the completed text");
    }

    // A harmful change: the client's origin dropped. The canary's gate fails; every replica keeps the last good.
    let harmful = document("https://other.example", "2m");
    let harmful_rv = set_document(&w, &harmful).await;
    let started = Instant::now();
    let rolled_back =
        wait_for(&w, "roll the harmful change back", Duration::from_secs(60), |s| s.phase == Phase::RolledBack).await;
    println!("e2e staged rollout: harmful edit rolled back after {} ms", started.elapsed().as_millis());
    let failure = rolled_back.failed.last().expect("the failure is recorded");
    assert_eq!((failure.gate.as_str(), failure.hash.as_str()), ("traffic", hash(&harmful).as_str()), "{failure:?}");
    let canary = rolled_back.waves[0][0].name.clone();
    assert_eq!(failure.replica, canary, "the first wave's replica failed it");
    let admin = w.cluster.plane.admin_kubeconfig();
    let (code, out) = w.kubectl_brokkr(admin, &["brokkr", "-n", NAMESPACE, "rollout-status"]).await;
    assert_eq!(code, 1, "a rollback ends rollout-status at once: {out}");
    assert!(out.contains(&format!("the traffic gate failed on {canary}")), "{out}");
    wait_until_running(&pods, "every replica runs the last good text", |runs| runs == hash(&healthy)).await;
    for (name, broker) in PODS.iter().zip(&brokers) {
        let history = broker.as_ref().expect("running").history().await;
        let expected = usize::from(*name == canary);
        assert_eq!(applied(&history, &harmful_rv), expected, "{name} applied the harmful version: {history}");
        if *name == canary {
            let triggers: Vec<&str> =
                history["records"].as_array().expect("records").iter().filter_map(|r| r["trigger"].as_str()).collect();
            assert!(triggers.contains(&"rollback"), "{history}");
        }
    }

    // A replica restarted now, with the harmful text still in the ConfigMap, starts on the last good one.
    let index = PODS.iter().position(|p| *p != canary).expect("another replica");
    brokers[index] = None;
    let restarted = start_pod_broker(&w, PODS[index], &uids[index], "4s").await;
    restarted.wait_for_configmap().await;
    assert_eq!(restarted.allowed_origin("/healthz", CLIENT).await.as_deref(), Some(CLIENT), "the last good CORS");
    assert_eq!(applied(&restarted.history().await, &harmful_rv), 0, "it never applied the harmful version");
    stop.store(true, Ordering::Relaxed);
    client.await.expect("the client stops");
}

/// The operator's rights the README names: follow and steer the rollout, read the Pods and the ConfigMap.
const OPERATOR_ROLE: &str = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
  "metadata": {"name": "rollout-operator", "namespace": "brokkr"},
  "rules": [
    {"apiGroups": ["brokkr.io"], "resources": ["configrollouts"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list", "watch"]}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_steer_a_rollout_a_newer_edit_supersedes_and_a_killed_coordinator_is_replaced() {
    let w = Walkthrough::start().await;
    w.kubectl(&["create", "namespace", NAMESPACE]).await.ok("create namespace");
    let install = ["install", RELEASE, "charts/brokkr-broker", "-n", NAMESPACE];
    let values = ["--set", "podStatus.enabled=true", "--set", "rollout.enabled=true"];
    w.helm(&[&install[..], &values[..]].concat()).await.ok("helm install");
    w.kubectl_with(&["apply", "-f", "-"], OPERATOR_ROLE).await.ok("operator Role");
    let bind = ["-n", NAMESPACE, "create", "rolebinding", "rollout-operator", "--role=rollout-operator"];
    w.kubectl(&[&bind[..], &["--user", "operator"]].concat()).await.ok("bind the operator");
    let operator = w.cluster.plane.user_kubeconfig("operator").expect("operator kubeconfig");
    let brokkr = |args: &'static [&'static str]| {
        let mut all = vec!["brokkr", "-n", NAMESPACE];
        all.extend_from_slice(args);
        all
    };
    set_document(&w, &document(CLIENT, "1m")).await;
    let pods = Api::<Pod>::namespaced(w.cluster.admin.clone(), NAMESPACE);
    let mut brokers = Vec::new();
    for name in PODS {
        let uid = create_ready_pod(&pods, name).await;
        // A bake no test waits for: the operator's promote moves each wave.
        brokers.push(Some(start_pod_broker(&w, name, &uid, "5m").await));
    }
    wait_for(&w, "adopt the first text", Duration::from_secs(60), |s| s.last_good.is_some()).await;

    // A newer edit during wave 1 supersedes: a new rollout at wave 1, and nobody keeps running the older text.
    let first = document(CLIENT, "2m");
    set_document(&w, &first).await;
    let superseded = wait_for(&w, "stage the first edit", Duration::from_secs(30), |s| {
        s.phase == Phase::Progressing && s.target.as_ref().is_some_and(|t| t.hash == hash(&first))
    })
    .await;
    let second = document(CLIENT, "3m");
    set_document(&w, &second).await;
    let started = wait_for(&w, "stage the newer edit", Duration::from_secs(30), |s| {
        s.target.as_ref().is_some_and(|t| t.hash == hash(&second))
    })
    .await;
    assert_ne!(started.rollout_id, superseded.rollout_id);
    assert_eq!(started.admitted, 1, "a superseding edit starts at the first wave");
    wait_until_running(&pods, "no replica runs the superseded text", |runs| runs != hash(&first)).await;

    // Forged inputs are refused by the chart's policies: a verdict written by anyone but the Pod's broker, and a
    // command that does not carry its writer's name.
    let forged = json!({ "metadata": { "annotations": { "config.brokkr.io/verdict": "{}" } } });
    let refused = pods.patch(PODS[0], &PatchParams::default(), &Patch::Merge(&forged)).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("only a Pod's own broker")), "a forged verdict");
    let api = rollouts(w.cluster.admin.clone(), NAMESPACE);
    let command = json!({ "spec": { "promote": { "rolloutId": started.rollout_id, "wave": 1, "by": "operator" } } });
    let refused = api.patch(RELEASE, &PatchParams::default(), &Patch::Merge(&command)).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("user name")), "a command in another's name");

    // The brokers' own ServiceAccount, without a token bound to a broker's Pod (stolen, or impersonated), writes
    // no rollout object: the chart's writers policy wants the Pod binding.
    let unbound = w.kubectl(&["-n", NAMESPACE, "create", "token", RELEASE]).await.ok("an unbound token");
    let unbound = w.cluster.plane.token_kubeconfig("unbound", unbound.trim()).expect("kubeconfig");
    let unbound = brokkr_testenv::ControlPlane::client_for(&unbound).await.expect("client");
    let theirs = rollouts(unbound, NAMESPACE);
    let mut forged = theirs.get(RELEASE).await.expect("the brokers may read it");
    forged.status.get_or_insert_with(Default::default).reason = "forged".into();
    let refused = theirs.replace_status(RELEASE, &Default::default(), &forged).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("token bound to their Pod")), "an unbound status write");

    // The operator promotes wave 1 with their own credentials.
    let (code, out) = w.kubectl_brokkr(&operator, &brokkr(&["rollout", "promote"])).await;
    assert_eq!(code, 0, "{out}");
    let promoted = wait_for(&w, "promote wave 1", Duration::from_secs(30), |s| s.admitted == 2).await;
    assert_eq!(promoted.promoted.map(|c| c.by).as_deref(), Some("operator"));
    let (code, out) = w.kubectl_brokkr(&operator, &brokkr(&["rollout-status", "--timeout", "1s"])).await;
    assert_eq!(code, 2, "still baking: {out}");
    assert!(out.contains("wave 2 of 3") && out.contains("left"), "{out}");

    // The coordinator's process dies with its Pod: another replica takes the Lease over, fences, and goes on.
    let holder = promoted.coordinator.clone().expect("a coordinator wrote the status");
    let index = PODS.iter().position(|p| *p == holder.holder).expect("a broker holds the Lease");
    brokers[index] = None;
    pods.delete(&holder.holder, &Default::default()).await.expect("delete the coordinator's Pod");
    let resumed = wait_for(&w, "another coordinator", Duration::from_secs(45), |s| {
        s.coordinator.as_ref().is_some_and(|c| c.holder != holder.holder && c.term > holder.term)
    })
    .await;
    assert_eq!(resumed.rollout_id, started.rollout_id, "the same rollout, resumed");
    assert!(resumed.waves.iter().flatten().all(|m| m.name != holder.holder), "the deleted Pod left the waves");

    // A replica added mid-rollout joins the last wave.
    let newcomer = "broker-e";
    let uid = create_ready_pod(&pods, newcomer).await;
    brokers.push(Some(start_pod_broker(&w, newcomer, &uid, "5m").await));
    wait_for(&w, "the newcomer joins the last wave", Duration::from_secs(30), |s| {
        s.waves.last().is_some_and(|wave| wave.iter().any(|m| m.name == newcomer))
    })
    .await;

    // Promote through the remaining waves; the rollout completes on the three replicas left and the newcomer.
    for _ in 0..3 {
        let status = wait_for(&w, "a rollout", Duration::from_secs(5), |_| true).await;
        if status.phase == Phase::Complete {
            break;
        }
        let (code, out) = w.kubectl_brokkr(&operator, &brokkr(&["rollout", "promote"])).await;
        assert_eq!(code, 0, "{out}");
        let wave = status.admitted;
        wait_for(&w, "the next wave", Duration::from_secs(30), |s| s.admitted > wave || s.phase == Phase::Complete)
            .await;
    }
    let (code, out) = w.kubectl_brokkr(&operator, &brokkr(&["rollout-status", "--timeout", "30s"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all 4 ready replicas run text"), "{out}");

    // An abort: every replica goes back to the last good text, and rollout-status says who aborted.
    let third = document(CLIENT, "4m");
    set_document(&w, &third).await;
    wait_for(&w, "stage the third edit", Duration::from_secs(30), |s| {
        s.phase == Phase::Progressing && s.target.as_ref().is_some_and(|t| t.hash == hash(&third))
    })
    .await;
    let (code, out) = w.kubectl_brokkr(&operator, &brokkr(&["rollout", "abort"])).await;
    assert_eq!(code, 0, "{out}");
    let aborted = wait_for(&w, "abort", Duration::from_secs(30), |s| s.phase == Phase::RolledBack).await;
    assert_eq!(aborted.failed.last().map(|f| f.gate.as_str()), Some("abort"));
    let (code, out) = w.kubectl_brokkr(&operator, &brokkr(&["rollout-status"])).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("aborted by operator"), "{out}");
    // The deleted coordinator's Pod is gone, so only the live replicas are asked.
    wait_until_running(&pods, "every replica runs the last good text", |runs| runs == hash(&second)).await;
}
