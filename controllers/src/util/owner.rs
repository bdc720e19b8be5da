//! Owner references: who controls an object, and building the reference a controller stamps on what it
//! creates. Pure helpers over `ObjectMeta`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The one owner reference with `controller: true`, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true))
}

/// Whether the object's controller is the object with this uid.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_ref(meta).is_some_and(|o| o.uid == uid)
}

/// The controller reference a controller puts on the objects it creates or adopts.
pub fn new_controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_the_controller_reference() {
        let owner = ObjectMeta { name: Some("rs".into()), uid: Some("u1".into()), ..Default::default() };
        let mut non_controller = new_controller_ref("apps/v1", "ReplicaSet", &owner);
        non_controller.controller = Some(false);
        non_controller.uid = "u0".into();
        let meta = ObjectMeta {
            owner_references: Some(vec![non_controller, new_controller_ref("apps/v1", "ReplicaSet", &owner)]),
            ..Default::default()
        };
        assert_eq!(controller_ref(&meta).map(|o| o.uid.as_str()), Some("u1"));
        assert!(is_controlled_by(&meta, "u1"));
        assert!(!is_controlled_by(&meta, "u0"));
        assert!(controller_ref(&ObjectMeta::default()).is_none());
    }
}
