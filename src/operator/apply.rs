//! Server-side apply of one child object, sent only when the child drifted from its desired
//! state, so that a steady store costs one read per child and its events say what changed.
//!
//! A child has drifted when it is missing, when the desired state changed since the operator
//! last applied it (a hash annotation records that, so fields the operator stopped setting are
//! removed by the apply), or when someone changed or removed a field the operator sets. Fields
//! other managers add (defaults, other tools' labels) are not drift.
//!
//! An object under a child's name that the store does not own (no controller reference to
//! it) is left alone: a forced apply would take its fields over and add an owner reference,
//! so the garbage collector would delete the user's object with the store. The store's data
//! claim is the exception that proves the rule: retained, it has no owner reference (it must
//! outlive the store), so it is known by its `cstore.dev/data-of` label instead, which a
//! user's own claim under that name does not carry.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::api_call::traced;
use super::resources::{DATA_OF_LABEL, sha256_hex};

/// The one field manager every apply of the operator uses.
pub const FIELD_MANAGER: &str = "cstore-operator";

/// Annotation holding the SHA-256 of the desired object as last applied.
pub const APPLIED_HASH_ANNOTATION: &str = "cstore.dev/applied-hash";

/// What an apply did to a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

/// Why a child could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// An object under the child's name exists and is not the store's.
    #[error("it exists and is not owned by this store; rename or delete it")]
    NotOwned,
}

/// Makes the child named like `desired` match it: applies it (forcing ownership of the fields
/// it sets, as a controller must) unless the child is already in sync. Returns the child as
/// the API server holds it afterwards. `desired` carries its controller owner reference, or
/// the data-of label; an existing object without the same one is refused
/// ([`ApplyError::NotOwned`]).
pub async fn apply<K>(api: &Api<K>, desired: K) -> Result<(K, Change), ApplyError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let desired = with_applied_hash(desired);
    let name = desired.name_any();
    let kind = K::kind(&());
    let existing = traced("get", &kind, &name, api.get_opt(&name)).await?;
    if let Some(current) = &existing
        && !is_ours(current, &desired)
    {
        return Err(ApplyError::NotOwned);
    }
    if let Some(current) = &existing
        && in_sync(current, &desired)
    {
        return Ok((current.clone(), Change::Unchanged));
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = traced("apply", &kind, &name, api.patch(&name, &params, &Patch::Apply(&desired))).await?;
    let change = match existing {
        None => Change::Created,
        // An apply that changes nothing keeps the resourceVersion: drift the API server
        // normalizes away (a quantity written 0.5 and read 500m) is not reported as a change.
        Some(current) if current.resource_version() == applied.resource_version() => Change::Unchanged,
        Some(_) => Change::Updated,
    };
    Ok((applied, change))
}

/// Whether `current` is the object `desired` describes, not someone else's under its name:
/// the same data-of label when `desired` has one (whatever the owner references say, so that
/// a retained claim is used again by a store created anew under its name, and whenDeleted can
/// change either way), else the same controller.
fn is_ours<K: Resource>(current: &K, desired: &K) -> bool {
    match desired.labels().get(DATA_OF_LABEL) {
        Some(store) => current.labels().get(DATA_OF_LABEL) == Some(store),
        None => controller_uid(current) == controller_uid(desired),
    }
}

/// The UID of the object's controller (the owner reference marked `controller: true`).
fn controller_uid<K: Resource>(object: &K) -> Option<&str> {
    object.owner_references().iter().find(|owner| owner.controller == Some(true)).map(|owner| owner.uid.as_str())
}

/// The desired object with the hash of itself (before the annotation is added) annotated.
fn with_applied_hash<K: Resource + Serialize>(mut desired: K) -> K {
    let json = serde_json::to_string(&desired).unwrap_or_default();
    desired.annotations_mut().insert(APPLIED_HASH_ANNOTATION.to_owned(), sha256_hex(&json));
    desired
}

fn in_sync<K: Serialize>(current: &K, desired: &K) -> bool {
    match (serde_json::to_value(current), serde_json::to_value(desired)) {
        (Ok(current), Ok(desired)) => contains(&current, &desired),
        _ => false,
    }
}

/// Whether `actual` holds everything `wanted` says: every field of an object (extra fields are
/// fine), every element of a list in order (a list of another length has drifted), and equal
/// scalars.
pub fn contains(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Object(actual), Value::Object(wanted)) => {
            wanted.iter().all(|(key, value)| actual.get(key).is_some_and(|present| contains(present, value)))
        }
        (Value::Array(actual), Value::Array(wanted)) => {
            actual.len() == wanted.len() && actual.iter().zip(wanted).all(|(present, value)| contains(present, value))
        }
        _ => actual == wanted,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use serde_json::json;

    use super::*;

    #[test]
    fn extra_fields_are_not_drift_but_changed_and_missing_ones_are() {
        let wanted = json!({"spec": {"replicas": 2, "ports": [{"name": "redis", "port": 6379}]}});
        let defaulted = json!({"spec": {"replicas": 2, "paused": false, "ports": [{"name": "redis", "port": 6379, "protocol": "TCP"}]}});
        assert!(contains(&defaulted, &wanted));
        for drifted in [
            json!({"spec": {"replicas": 3, "ports": [{"name": "redis", "port": 6379}]}}),
            json!({"spec": {"ports": [{"name": "redis", "port": 6379}]}}),
            json!({"spec": {"replicas": 2, "ports": [{"name": "redis", "port": 6380}]}}),
            json!({"spec": {"replicas": 2, "ports": []}}),
            json!({"spec": {"replicas": 2, "ports": [{"name": "redis", "port": 6379}, {"name": "x", "port": 1}]}}),
            json!({"spec": {"replicas": "2", "ports": [{"name": "redis", "port": 6379}]}}),
        ] {
            assert!(!contains(&drifted, &wanted), "{drifted}");
        }
    }

    #[test]
    fn an_object_is_ours_by_its_controller_or_by_its_data_of_label() {
        let claim = |labels: &[(&str, &str)], controller: Option<&str>| ConfigMap {
            metadata: ObjectMeta {
                name: Some("cache-data".into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                owner_references: controller.map(|uid| {
                    vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                        uid: uid.into(),
                        controller: Some(true),
                        ..k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        let ours = [(DATA_OF_LABEL, "cache")];
        // Retained (no owner) and deleted with the store (owned), in every combination.
        for current in [None, Some("store-uid")] {
            for desired in [None, Some("store-uid"), Some("new-store-uid")] {
                assert!(is_ours(&claim(&ours, current), &claim(&ours, desired)), "{current:?} {desired:?}");
            }
        }
        assert!(!is_ours(&claim(&[], None), &claim(&ours, None)), "a user's claim under the name");
        assert!(!is_ours(&claim(&[(DATA_OF_LABEL, "other")], None), &claim(&ours, None)), "another store's data");
        // Without the label, the controller decides, as for every other child.
        assert!(is_ours(&claim(&[], Some("a")), &claim(&[], Some("a"))));
        assert!(!is_ours(&claim(&[], None), &claim(&[], Some("a"))), "a user's object");
        assert!(!is_ours(&claim(&[], Some("b")), &claim(&[], Some("a"))), "another owner's object");
    }

    #[test]
    fn the_applied_hash_follows_the_desired_content() {
        let config_map = |value: &str| ConfigMap {
            metadata: ObjectMeta { name: Some("a".into()), ..ObjectMeta::default() },
            data: Some([("k".to_owned(), value.to_owned())].into()),
            ..ConfigMap::default()
        };
        let hash = |value| with_applied_hash(config_map(value)).annotations()[APPLIED_HASH_ANNOTATION].clone();
        assert_eq!(hash("one"), hash("one"));
        assert_ne!(hash("one"), hash("two"));
        assert_eq!(hash("one").len(), 64);
    }
}
