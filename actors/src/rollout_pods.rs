//! What the coordinator reads off the broker Pods: readiness, termination, restarts, the text each runs and its
//! verdict, and whether the Deployment itself is rolling (Pods of more than one template).

use k8s_openapi::api::core::v1::Pod;

use crate::{
    rollout_step::PodView,
    rollout_verdict::{VERDICT, Verdict},
};

/// The annotation in which a replica says which text it runs (the SHA-256 of its document).
pub const DOCUMENT_HASH: &str = "config.brokkr.io/document-hash";

/// The label the Deployment controller puts on each Pod: one value per Pod template.
const TEMPLATE_HASH: &str = "pod-template-hash";

/// `pod` as the coordinator sees it; `container` is the broker's container, whose restarts count. A Pod that is
/// not a broker's is left out: without a uid or a name, without the broker's container, or, when
/// `service_account` is given, running as another ServiceAccount (a Pod with the selector's labels alone, which
/// anyone who may create Pods can make, must not hold adoption or fill a wave).
#[must_use]
pub fn pod_view(pod: &Pod, container: &str, service_account: Option<&str>) -> Option<PodView> {
    let spec = pod.spec.as_ref()?;
    if !spec.containers.iter().any(|c| c.name == container) {
        return None;
    }
    if service_account.is_some_and(|sa| spec.service_account_name.as_deref() != Some(sa)) {
        return None;
    }
    let meta = &pod.metadata;
    let annotations = meta.annotations.as_ref();
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let restarts = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == container))
        .map_or(0, |c| u32::try_from(c.restart_count).unwrap_or(0));
    Some(PodView {
        uid: meta.uid.clone()?,
        name: meta.name.clone()?,
        ready,
        deleting: meta.deletion_timestamp.is_some(),
        restarts,
        runs: annotations.and_then(|a| a.get(DOCUMENT_HASH)).cloned(),
        // Anyone with `edit` could have written it, until the chart's policy is in place: unreadable is no verdict.
        verdict: annotations.and_then(|a| a.get(VERDICT)).and_then(|v| Verdict::parse(v).ok()),
    })
}

/// Whether Pods of more than one template are running: the Deployment is rolling out, and no wave is admitted.
#[must_use]
pub fn deployment_rolling(pods: &[Pod]) -> bool {
    let mut templates = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.labels.as_ref().and_then(|l| l.get(TEMPLATE_HASH)));
    let first = templates.next();
    templates.any(|t| Some(t) != first)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("a Pod")
    }

    #[test]
    fn readiness_restarts_text_and_verdict_are_read_and_a_forged_verdict_is_none() {
        let broker = json!({ "serviceAccountName": "brokkr", "containers": [{ "name": "broker" }] });
        let view = pod_view(
            &pod(json!({
                "metadata": { "name": "b-0", "uid": "u-0",
                    "annotations": { DOCUMENT_HASH: "abc", VERDICT: "{\"rollout\": \"R\"}" } },
                "spec": broker,
                "status": {
                    "conditions": [{ "type": "Ready", "status": "True" }],
                    "containerStatuses": [
                        { "name": "sidecar", "restartCount": 9, "ready": true, "image": "x", "imageID": "" },
                        { "name": "broker", "restartCount": 2, "ready": true, "image": "x", "imageID": "" }
                    ]
                }
            })),
            "broker",
            Some("brokkr"),
        )
        .expect("a view");
        assert_eq!((view.ready, view.restarts, view.runs.as_deref(), view.verdict), (true, 2, Some("abc"), None));
        assert!(pod_view(&pod(json!({ "metadata": { "name": "no-uid" }, "spec": broker })), "broker", None).is_none());
        let decoy =
            json!({ "metadata": { "name": "d", "uid": "u" }, "spec": { "containers": [{ "name": "broker" }] } });
        assert!(pod_view(&pod(decoy.clone()), "broker", Some("brokkr")).is_none(), "another ServiceAccount");
        assert!(pod_view(&pod(decoy), "sidecar", None).is_none(), "no broker container");
    }

    #[test]
    fn pods_of_two_templates_mean_the_deployment_is_rolling_unless_the_old_ones_are_leaving() {
        let of = |hash: &str, leaving: bool| {
            let mut p = pod(json!({ "metadata": { "labels": { TEMPLATE_HASH: hash } } }));
            if leaving {
                p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ));
            }
            p
        };
        assert!(!deployment_rolling(&[of("a", false), of("a", false)]));
        assert!(deployment_rolling(&[of("a", false), of("b", false)]));
        assert!(!deployment_rolling(&[of("a", true), of("b", false)]));
        assert!(!deployment_rolling(&[]));
    }
}
