//! What a replica has in force, as annotations on its own Pod, so that `kubectl get pods` and `kubectl brokkr`
//! show it without a port-forward or a token. Written once per change of what they say, never per resync of the
//! same version; the chart's ValidatingAdmissionPolicy lets a replica change only these annotations of its own Pod.

use std::{collections::BTreeMap, time::Duration};

use brokkr_config::{AppSettings, ConfigSnapshot, Outcome, ReloadableConfig, text::clip};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tracing::{debug, error, warn};

use crate::{
    history::{ReloadHistory, ReloadRecord},
    transport::REQUEST_TIMEOUT,
};

/// Prefix of every annotation a replica writes on its Pod.
pub const ANNOTATION_PREFIX: &str = "config.brokkr.io/";

/// The resourceVersion of the ConfigMap whose settings are in force.
pub const IN_FORCE: &str = "config.brokkr.io/resource-version";
/// Hash of the live settings in force.
pub const HASH: &str = "config.brokkr.io/hash";
/// Generation in force.
pub const GENERATION: &str = "config.brokkr.io/generation";
/// The resourceVersion of the last document judged (applied, rejected or found unchanged).
pub const SEEN: &str = "config.brokkr.io/seen";
/// `applied`, `rejected`, `restart-required`, or `unread` (started without reading the ConfigMap).
pub const OUTCOME: &str = "config.brokkr.io/outcome";
/// Why it was rejected, or which keys wait for a restart; empty otherwise.
pub const REASON: &str = "config.brokkr.io/reason";
/// The annotation's outcome when the version judged is in force but restart-only keys wait: besides the
/// [`Outcome`] forms `applied`, `rejected` and `unread`, the one value of [`OUTCOME`] that is not an outcome.
pub const RESTART_REQUIRED: &str = "restart-required";

/// When the last outcome happened (RFC 3339).
pub const AT: &str = "config.brokkr.io/at";

/// The longest reason written, in bytes: annotations are stored with the Pod and read by every `kubectl get`.
pub const REASON_LIMIT: usize = 256;

/// The longest wait between two attempts of a write the API server did not answer or failed.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// The wait after a write the API server refused (403 without the Role, 404 for a wrong `POD_NAME`, 422): it will
/// not change by itself soon, and a fleet retrying it every minute is load for nothing.
pub const REFUSED_RETRY: Duration = Duration::from_secs(600);

/// The shortest time between two writes of one replica: edits applied faster than this (a debounce of 100 ms)
/// are coalesced, and only the newest state is written.
pub const MIN_WRITE_INTERVAL: Duration = Duration::from_secs(2);

/// Who writes the annotations, in the Pod's `managedFields`.
const FIELD_MANAGER: &str = "brokkr-broker";

/// The start of the API server's message when a ValidatingAdmissionPolicy (`policy`, or any when `None`) denies a
/// request on Pod `pod` (k8s.io/apiserver, policy/validating/dispatcher.go):
/// `pods "<pod>" is forbidden: ValidatingAdmissionPolicy '<policy>' with binding '<binding>' denied request: …`.
fn policy_denial_head(pod: &str, policy: Option<&str>) -> String {
    match policy {
        Some(policy) => format!("pods \"{pod}\" is forbidden: ValidatingAdmissionPolicy '{policy}' with binding '"),
        None => format!("pods \"{pod}\" is forbidden: ValidatingAdmissionPolicy '"),
    }
}

/// Whether `status` is a denial of a change to Pod `pod` by the ValidatingAdmissionPolicy `policy`, through any of
/// its bindings. Matched at the start of the message only: another policy's or a webhook's text (which follows its
/// own prefix) may quote this one's.
fn denied_by(status: &kube::core::Status, pod: &str, policy: &str) -> bool {
    refusal(status.code) && status.message.starts_with(&policy_denial_head(pod, Some(policy)))
}

/// The changes the start-up check asks for as dry runs, each of which the chart's policy must refuse: a label, an
/// annotation outside the prefix, and a `config.brokkr.io/` key the broker does not own. Each round asks for a new
/// random value: a key someone already set to a fixed value would make the dry run change nothing, which the policy
/// admits (a foreign key may stay as it is), and the check would report the guard missing.
fn forbidden_changes() -> [(&'static str, serde_json::Value); 3] {
    let value = format!("{:016x}", fastrand::u64(..));
    [
        ("a label", json!({ "metadata": { "labels": { "config.brokkr.io/guard-check": value } } })),
        (
            "an annotation outside config.brokkr.io/",
            json!({ "metadata": { "annotations": { "brokkr.io/guard-check": value } } }),
        ),
        (
            "a config.brokkr.io/ annotation it does not own",
            json!({ "metadata": { "annotations": { "config.brokkr.io/guard-check": value } } }),
        ),
    ]
}

/// One round of the start-up check.
enum GuardCheck {
    /// Every forbidden change refused, at least one by the named policy (another may be named first).
    Guarded,
    /// This forbidden change was admitted.
    Admitted(&'static str),
    /// Every one refused, none by the named policy (RBAC, a wrong `POD_NAME`, another policy): the first message.
    Refused(String),
    /// Every one refused by ValidatingAdmissionPolicies, none naming the chart's: the API server names only the
    /// first policy that denied, in an order that changes when its policies do, so this is asked again soon.
    OtherPolicies(String),
    /// No answer, a 5xx or a 429.
    Unanswered(String),
}

/// The most bytes of an API server's message (a policy's denial, say) a log line shows, as for other error text.
const MESSAGE_LIMIT: usize = brokkr_config::text::ERROR_LIMIT;

/// A 4xx that will not change by itself soon (not 408 or 429).
fn refusal(code: u16) -> bool {
    (400..500).contains(&code) && !matches!(code, 408 | 429)
}

/// The annotations that say `record`, with `in_force` the snapshot in force after it.
#[must_use]
pub fn annotations<S>(record: &ReloadRecord, in_force: &ConfigSnapshot<S>) -> BTreeMap<String, String> {
    let error = || record.error.clone().unwrap_or_default();
    let (outcome, reason) = match record.outcome {
        Outcome::Rejected | Outcome::Unread | Outcome::Held => (record.outcome.as_str(), error()),
        Outcome::Applied | Outcome::Unchanged if !record.restart_required.is_empty() => {
            (RESTART_REQUIRED, format!("waiting for a restart: {}", record.restart_required.join(", ")))
        }
        // The version judged is in force, whether it changed anything or not.
        Outcome::Applied | Outcome::Unchanged => (Outcome::Applied.as_str(), String::new()),
    };
    let in_force_version = in_force.source.as_ref().and_then(|s| s.resource_version.clone()).unwrap_or_default();
    [
        (IN_FORCE, in_force_version),
        (HASH, in_force.hash.clone()),
        (GENERATION, in_force.generation.to_string()),
        (SEEN, record.resource_version.clone().unwrap_or_default()),
        (OUTCOME, outcome.to_owned()),
        (REASON, clip(&reason, REASON_LIMIT).into_owned()),
        (AT, humantime::format_rfc3339_seconds(record.at).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Writes the annotations of one Pod: the broker's own, named by `POD_NAME`.
#[derive(Clone)]
pub struct PodStatus {
    pods: Api<Pod>,
    name: String,
}

impl std::fmt::Debug for PodStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodStatus").field("name", &self.name).finish_non_exhaustive()
    }
}

impl PodStatus {
    /// The Pod `name` in `namespace`.
    #[must_use]
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        Self { pods: Api::namespaced(client, namespace), name: name.to_owned() }
    }

    /// Follows `history` until the broker stops: after each record, the annotations are written if they differ
    /// from the last ones written, at most every [`MIN_WRITE_INTERVAL`]. A failed write is tried again (1 s,
    /// doubling up to a minute) with what is current then; a refused one (no right to patch, no such Pod, the
    /// policy's denial) after [`REFUSED_RETRY`], said once at WARN. First, a dry run checks that the admission
    /// policy `policy` (the chart's ValidatingAdmissionPolicy) would refuse changes outside the broker's annotations:
    /// if it would not, the guard is missing, and nothing is written (said at ERROR).
    pub async fn publish<S: AppSettings>(self, policy: String, history: ReloadHistory, config: ReloadableConfig<S>) {
        self.until_guarded(&policy).await;
        let mut records = history.subscribe();
        let mut written: Option<BTreeMap<String, String>> = None;
        let (mut retry, mut refused) = (Duration::from_secs(1), None::<String>);
        loop {
            let record = records.borrow_and_update().clone();
            let wanted = record.map(|r| annotations(&r, &config.current()));
            if let Some(wanted) = wanted.filter(|w| written.as_ref() != Some(w)) {
                let patch = Patch::Merge(json!({ "metadata": { "annotations": wanted } }));
                let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
                match self.patch(&params, &patch).await {
                    Ok(_) => {
                        debug!(pod = %self.name, "configuration state written to the Pod's annotations");
                        (written, retry, refused) = (Some(wanted), Duration::from_secs(1), None);
                        tokio::time::sleep(MIN_WRITE_INTERVAL).await;
                    }
                    Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404 | 422) => {
                        // Publishing was asked for (`--pod-status`), so any refusal is a misconfiguration: the Role
                        // without `patch` on Pods, a wrong POD_NAME, or the policy's denial.
                        if refused.as_deref() != Some(status.message.as_str()) {
                            warn!(pod = %self.name, reason = %clip(&status.message, MESSAGE_LIMIT), retry_in = ?REFUSED_RETRY, "the API server refuses the annotations of the broker's own Pod (--pod-status needs patch on Pods and the chart's policy); `kubectl brokkr` cannot see this replica");
                        }
                        refused = Some(status.message.clone());
                        tokio::time::sleep(REFUSED_RETRY).await;
                        continue;
                    }
                    Err(error) => {
                        warn!(pod = %self.name, error = %clip(&error.to_string(), MESSAGE_LIMIT), retry_in = ?retry, "could not annotate the broker's own Pod");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(MAX_RETRY);
                        continue;
                    }
                }
            }
            if records.changed().await.is_err() {
                return;
            }
        }
    }

    /// One patch of the Pod, given up after [`REQUEST_TIMEOUT`] (then an error like any failed connection).
    async fn patch(&self, params: &PatchParams, patch: &Patch<serde_json::Value>) -> Result<Pod, kube::Error> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.pods.patch(&self.name, params, patch)).await {
            Ok(patched) => patched,
            Err(_) => Err(kube::Error::Service(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {}", humantime::format_duration(REQUEST_TIMEOUT)),
            )))),
        }
    }

    /// Returns once the chart's admission policy, `policy`, guards the Pod: each of three dry-run forbidden
    /// changes ([`forbidden_changes`]) must be refused, and at least one refusal must name `policy` (a dry run is
    /// judged by admission but stored nowhere); a cluster-wide policy of another name that happens to refuse one
    /// does not count. A policy created with the chart is enforced a few seconds after it is stored, so an admitted
    /// change is tried again: every 2 s for a minute from the first admission, then said at ERROR and tried every
    /// [`REFUSED_RETRY`]. Refusals that do not name the policy (RBAC without `patch`, a wrong `POD_NAME`, another
    /// policy) are said at WARN and asked again after [`REFUSED_RETRY`]; an API server that does not answer, or
    /// answers 5xx or 429, after 2 s, doubling up to a minute.
    async fn until_guarded(&self, policy: &str) {
        let mut admitted_since: Option<tokio::time::Instant> = None;
        let (mut said, mut retry, mut refused) = (false, Duration::from_secs(2), None::<String>);
        loop {
            match self.check_guard(policy).await {
                GuardCheck::Guarded => break,
                GuardCheck::Refused(message) => {
                    if refused.as_deref() != Some(message.as_str()) {
                        warn!(pod = %self.name, policy, reason = %clip(&message, MESSAGE_LIMIT), retry_in = ?REFUSED_RETRY, "the API server refuses the check of the broker's own Pod, but not through the chart's policy (--pod-status needs patch on Pods and that policy); `kubectl brokkr` cannot see this replica");
                    }
                    refused = Some(message);
                    tokio::time::sleep(REFUSED_RETRY).await;
                }
                GuardCheck::OtherPolicies(message) => {
                    if refused.as_deref() != Some(message.as_str()) {
                        warn!(pod = %self.name, policy, reason = %clip(&message, MESSAGE_LIMIT), retry_in = ?retry, "other admission policies refuse the check of the broker's own Pod before the chart's policy is named; asking again");
                    }
                    refused = Some(message);
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                }
                GuardCheck::Unanswered(error) => {
                    debug!(pod = %self.name, error = %clip(&error, MESSAGE_LIMIT), retry_in = ?retry, "could not check the admission policy; trying again");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                }
                GuardCheck::Admitted(_)
                    if admitted_since.get_or_insert_with(tokio::time::Instant::now).elapsed()
                        < Duration::from_secs(60) =>
                {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                GuardCheck::Admitted(change) => {
                    if !said {
                        error!(pod = %self.name, policy, change, "the admission policy that limits the broker to its own Pod's annotations is not in force (a dry-run change was admitted); not writing the Pod's annotations until it is");
                        said = true;
                    }
                    tokio::time::sleep(REFUSED_RETRY).await;
                }
            }
        }
        if said {
            warn!(pod = %self.name, "the admission policy is in force now; writing the Pod's annotations");
        }
    }

    /// One round of the check: each forbidden change as a dry run, ending at the first admitted or unanswered.
    async fn check_guard(&self, policy: &str) -> GuardCheck {
        let params = PatchParams { dry_run: true, field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
        let (mut named, mut by_policies, mut other) = (false, true, None::<String>);
        let any_policy = policy_denial_head(&self.name, None);
        for (change, patch) in forbidden_changes() {
            match self.patch(&params, &Patch::Merge(patch)).await {
                Ok(_) => return GuardCheck::Admitted(change),
                Err(kube::Error::Api(status)) if refusal(status.code) => {
                    named |= denied_by(&status, &self.name, policy);
                    by_policies &= status.message.starts_with(&any_policy);
                    other.get_or_insert(status.message);
                }
                Err(error) => return GuardCheck::Unanswered(error.to_string()),
            }
        }
        match (named, by_policies) {
            (true, _) => GuardCheck::Guarded,
            (false, true) => GuardCheck::OtherPolicies(other.unwrap_or_default()),
            (false, false) => GuardCheck::Refused(other.unwrap_or_default()),
        }
    }
}
