//! The staged rollout's objects in the cluster (group `brokkr.io`, version `v1alpha1`, created by the chart): the
//! `ConfigRollout` whose status the coordinator writes and whose spec carries operators' commands, and the
//! `ConfigRolloutDocument` that holds the last good text.
//!
//! Typed as kube's `Object<Spec, Status>` over an `ApiResource` rather than derived with `CustomResource`: the CRDs
//! are part of the chart (a structural schema written for people to read), and the derive would add schemars and
//! kube's derive feature to every build for two small types.

use kube::{Api, Client, core::ApiResource, core::NotUsed, core::object::Object};
use serde::{Deserialize, Serialize};

use crate::rollout_status::{Command, RolloutStatus};

/// The API group of both kinds.
pub const GROUP: &str = "brokkr.io";
/// Their version.
pub const VERSION: &str = "v1alpha1";

/// `spec` of a `ConfigRollout`: operators' commands only; the policy is the brokers' settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RolloutSpec {
    /// `kubectl brokkr rollout promote`: skip the rest of a wave's bake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promote: Option<Command>,
    /// `kubectl brokkr rollout abort`: roll every replica back to the last good text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<Command>,
}

/// One text the rollout keeps, with its version.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeptText {
    /// SHA-256 of `text`: a replica applies the text only if it matches.
    pub hash: String,
    /// The ConfigMap's resourceVersion when the coordinator read the text, for people.
    pub resource_version: String,
    /// The document's text, as the ConfigMap's data key held it.
    pub text: String,
}

/// Shows the text's size, never the text: it may name a secret's file, and it is up to 256 KiB.
impl std::fmt::Debug for KeptText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptText")
            .field("hash", &self.hash)
            .field("resource_version", &self.resource_version)
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .finish()
    }
}

/// `spec` of a `ConfigRolloutDocument`: the texts the current and the next status name (the last good text and the
/// target, at most [`MAX_KEPT`]), looked up by hash. A text the stored status names is never dropped before a
/// status that no longer names it is written, so a failed status write loses nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DocumentSpec {
    /// The kept texts.
    pub texts: Vec<KeptText>,
}

/// The most texts a document keeps: the last good text, the target, and a superseding target, of 256 KiB each.
pub const MAX_KEPT: usize = 3;

impl DocumentSpec {
    /// The kept text whose hash is `hash`, checked against its text: a text edited by hand is not found.
    #[must_use]
    pub fn find(&self, hash: &str) -> Option<&KeptText> {
        self.texts.iter().find(|k| k.hash == hash && crate::admission::DocumentHash::of(&k.text).as_str() == hash)
    }
}

/// A `ConfigRollout`.
pub type ConfigRollout = Object<RolloutSpec, RolloutStatus>;
/// A `ConfigRolloutDocument`.
pub type ConfigRolloutDocument = Object<DocumentSpec, NotUsed>;

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The `ConfigRollout` kind.
#[must_use]
pub fn rollout_resource() -> ApiResource {
    resource("ConfigRollout", "configrollouts")
}

/// The `ConfigRolloutDocument` kind.
#[must_use]
pub fn document_resource() -> ApiResource {
    resource("ConfigRolloutDocument", "configrolloutdocuments")
}

/// `ConfigRollout`s in `namespace`.
#[must_use]
pub fn rollouts(client: Client, namespace: &str) -> Api<ConfigRollout> {
    Api::namespaced_with(client, namespace, &rollout_resource())
}

/// `ConfigRolloutDocument`s in `namespace`.
#[must_use]
pub fn documents(client: Client, namespace: &str) -> Api<ConfigRolloutDocument> {
    Api::namespaced_with(client, namespace, &document_resource())
}
