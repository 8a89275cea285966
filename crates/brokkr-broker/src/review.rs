//! The part of an `AdmissionReview` the webhook reads. Everything else is skipped by the parser without being held.
//!
//! Written here instead of using kube's `AdmissionReview<DynamicObject>`: that type keeps every unknown field of
//! the object as a `serde_json::Value` (flattened, so serde buffers it twice on the way), and anyone who can reach
//! the port chooses those fields. Measured: a 15 MiB review of 7.8 million `0` elements took the broker to 503 MiB.

use std::fmt;

use kube::core::admission::{AdmissionResponse, Operation};
use serde::{
    Deserialize, Deserializer,
    de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor},
};
use serde_json::value::RawValue;

/// `{"request": …}`; `apiVersion` and `kind` are not checked (the registration asks for v1 only).
#[derive(Debug, Deserialize)]
pub struct Review {
    /// The request; a review without one is answered `400`.
    pub request: Option<ReviewRequest>,
}

/// The request fields the ConfigMap review needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewRequest {
    /// Echoed in the response; the API server matches answers by it.
    pub uid: String,
    /// The kind of the object under review.
    pub kind: ReviewKind,
    /// The object's name.
    #[serde(default)]
    pub name: String,
    /// The object's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: Operation,
    /// Who asked.
    #[serde(default)]
    pub user_info: ReviewUser,
    /// The object as it would be stored.
    #[serde(default)]
    pub object: Option<ObjectView>,
    /// The object as it is stored (UPDATE).
    #[serde(default)]
    pub old_object: Option<ObjectView>,
    /// True for `--dry-run=server`.
    #[serde(default)]
    pub dry_run: bool,
}

/// Group and kind of the object (the version is not needed: `matchPolicy: Equivalent`).
#[derive(Debug, Default, Deserialize)]
pub struct ReviewKind {
    /// Empty for the core group.
    #[serde(default)]
    pub group: String,
    /// Such as `ConfigMap`.
    #[serde(default)]
    pub kind: String,
}

/// The requesting user.
#[derive(Debug, Default, Deserialize)]
pub struct ReviewUser {
    /// The user name, if the API server sent one.
    #[serde(default)]
    pub username: Option<String>,
}

/// Of a ConfigMap: its version and its `data`, kept as the JSON text it was sent as.
#[derive(Debug, Default, Deserialize)]
pub struct ObjectView {
    /// `resourceVersion` and `uid`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `data` unparsed (one copy of its text, never a map of every key): only the broker's key is read from it.
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

impl ObjectView {
    /// `data[key]` if it is present and a string; any other value (the API server never sends one) counts as absent,
    /// which the build then reports as a missing key.
    #[must_use]
    pub fn data_value(&self, key: &str) -> Option<String> {
        let raw = self.data.as_ref()?;
        let mut json = serde_json::Deserializer::from_str(raw.get());
        OneKey(key).deserialize(&mut json).ok().flatten()
    }
}

/// Reads one key of a JSON object, skipping every other entry without keeping it.
struct OneKey<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for OneKey<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<String>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for OneKey<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or null")
    }
    fn visit_unit<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.0 {
                found = map.next_value::<MaybeString>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The object's identity and version.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The stored version (absent on CREATE).
    #[serde(default)]
    pub resource_version: Option<String>,
    /// The object's UID (absent on CREATE).
    #[serde(default)]
    pub uid: Option<String>,
}

/// A JSON value that is kept only if it is a string.
struct MaybeString(Option<String>);

impl<'de> Deserialize<'de> for MaybeString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keep;
        impl<'de> Visitor<'de> for Keep {
            type Value = MaybeString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<MaybeString, E> {
                Ok(MaybeString(Some(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<MaybeString, E> {
                Ok(MaybeString(Some(v)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_unit<E>(self) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeString, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeString(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeString, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeString(None))
            }
        }
        deserializer.deserialize_any(Keep)
    }
}

impl ReviewRequest {
    /// An allowing response to this request, to be denied or given warnings.
    #[must_use]
    pub fn response(&self) -> AdmissionResponse {
        // `invalid` is kube's one constructor that needs no `AdmissionRequest`; it sets the v1 type meta.
        let mut response = AdmissionResponse::invalid(String::new());
        response.uid.clone_from(&self.uid);
        response.allowed = true;
        response.result = kube::core::Status::default();
        response
    }
}

/// The longest `uid` echoed back: Kubernetes UIDs are 36 bytes, and a direct client could send megabytes.
pub const MAX_UID: usize = 128;

/// Parses a review body.
pub fn parse(body: &[u8]) -> Result<Review, serde_json::Error> {
    serde_json::from_slice(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_content_is_skipped_and_non_string_data_is_left_out() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"u","kind":{"group":"","version":"v1","kind":"ConfigMap"},"name":"b","namespace":"n",
            "operation":"UPDATE","userInfo":{"username":"alice","groups":["g"]},"extra":[[[[0]]]],
            "object":{"metadata":{"name":"b","resourceVersion":"7","managedFields":[{"x":1}]},
                      "data":{"broker.toml":"[log]","n":1,"a":[1,{"b":[]}],"o":{"p":"q"}},"spec":[0,0,0]},
            "oldObject":null,"dryRun":true}}"#;
        let request = parse(body).expect("parses").request.expect("a request");
        assert_eq!((request.uid.as_str(), request.name.as_str(), request.dry_run), ("u", "b", true));
        assert_eq!(request.operation, Operation::Update);
        let object = request.object.expect("object");
        assert_eq!(object.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(object.data_value("broker.toml").as_deref(), Some("[log]"));
        for key in ["n", "a", "o", "missing"] {
            assert_eq!(object.data_value(key), None, "{key}");
        }
        assert!(request.old_object.is_none());
        let response = serde_json::to_value(parse(body).expect("parses").request.expect("r").response().into_review())
            .expect("serializes");
        assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(
            (response["response"]["uid"].as_str(), response["response"]["allowed"].as_bool()),
            (Some("u"), Some(true))
        );
    }
}
