//! Field selectors as the apiserver applies them to one kind. Which fields a kind's selectors may name, and how
//! each is read from an object, is the kind's strategy's ([`Field`] lists, `strategy::Strategy::selectable_fields`,
//! as upstream's per-kind field label conversions and `ToSelectableFields`); this module only checks a parsed
//! selector against such a list ([`FieldMatcher::new`], upstream's `field label not supported` error) and
//! matches objects with it. Parsing label and field selectors is `rkube_apimachinery::{labels, fields}`, shared
//! with the controllers. Nothing here names a kind.

use rkube_apimachinery::fields::Selector;
use serde_json::Value;

/// One field a kind's field selectors may name, and how its value is read from an object of the kind.
#[derive(Clone, Copy)]
pub struct Field {
    /// The name a selector uses, e.g. `spec.nodeName`.
    pub label: &'static str,
    /// The field's value in an object, as upstream's selectable field set has it: a field the typed object
    /// always has reads as its zero value when absent from the JSON (`false`, `0`), others as `""`.
    pub value: fn(&Value) -> String,
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Field").field("label", &self.label).finish_non_exhaustive()
    }
}

/// The fields every kind supports: `metadata.name` and `metadata.namespace` (empty for cluster-scoped objects),
/// as upstream's `ObjectMetaFieldsSet`.
pub const METADATA_FIELDS: &[Field] = &[
    Field { label: "metadata.name", value: |o| text(o, "/metadata/name") },
    Field { label: "metadata.namespace", value: |o| text(o, "/metadata/namespace") },
];

/// The value at JSON pointer `pointer` as a field selector compares it: strings as they are, booleans and
/// numbers printed, `""` when absent or null.
pub fn text(obj: &Value, pointer: &str) -> String {
    text_or(obj, pointer, "")
}

/// As [`text`], but `absent` when the field is absent or null: for fields upstream reads from a typed object,
/// where an unset `bool` is `false` and an unset count `0`.
pub fn text_or(obj: &Value, pointer: &str, absent: &str) -> String {
    match obj.pointer(pointer) {
        None | Some(Value::Null) => absent.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// Why a field selector cannot be applied to a kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FieldSelectorError {
    /// The selector names a field the kind does not support (upstream's wording, answered with 400 BadRequest).
    #[error("field label not supported: {label}")]
    Unsupported {
        /// The field as the selector names it.
        label: String,
    },
}

/// A field selector checked against one kind's fields: each requirement with the reader of its field.
#[derive(Clone, Default)]
pub struct FieldMatcher {
    selector: Selector,
    reads: Vec<fn(&Value) -> String>,
}

impl std::fmt::Debug for FieldMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldMatcher").field("selector", &self.selector).finish_non_exhaustive()
    }
}

impl FieldMatcher {
    /// Checks every requirement of `selector` against [`METADATA_FIELDS`] and `kind_fields`, the kind's own.
    pub fn new(selector: Selector, kind_fields: &[Field]) -> Result<FieldMatcher, FieldSelectorError> {
        let reads = selector
            .requirements
            .iter()
            .map(|r| {
                METADATA_FIELDS
                    .iter()
                    .chain(kind_fields)
                    .find(|f| f.label == r.path)
                    .map(|f| f.value)
                    .ok_or_else(|| FieldSelectorError::Unsupported { label: r.path.clone() })
            })
            .collect::<Result<_, _>>()?;
        Ok(FieldMatcher { selector, reads })
    }

    /// The parsed selector.
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// Whether the selector has no requirement (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.selector.is_empty()
    }

    /// The value an equality term requires for `label`, if any (a list narrows to one key with `metadata.name`).
    pub fn required_value(&self, label: &str) -> Option<&str> {
        self.selector.required_value(label)
    }

    /// Whether `obj` meets every requirement, each field read the kind's way.
    pub fn matches(&self, obj: &Value) -> bool {
        self.selector.requirements.iter().zip(&self.reads).all(|(r, read)| (read(obj) == r.value) == r.equal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: &[Field] = &[
        Field { label: "spec.nodeName", value: |o| text(o, "/spec/nodeName") },
        Field { label: "spec.flag", value: |o| text_or(o, "/spec/flag", "false") },
        Field { label: "alias", value: |o| text(o, "/spec/real") },
    ];

    fn matcher(s: &str) -> Result<FieldMatcher, FieldSelectorError> {
        FieldMatcher::new(Selector::parse(s).expect("parses"), FIELDS)
    }

    #[test]
    fn each_requirement_is_read_with_its_fields_reader() {
        let obj = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1", "real": "x", "n": 3}});
        assert!(matcher("spec.nodeName=n1,metadata.namespace=d").expect("supported").matches(&obj));
        assert!(!matcher("spec.nodeName!=n1").expect("supported").matches(&obj));
        // an absent boolean reads as false, not as the empty string
        assert!(matcher("spec.flag=false").expect("supported").matches(&obj));
        assert!(!matcher("spec.flag=").expect("supported").matches(&obj));
        // a label need not be the object's path
        assert!(matcher("alias=x").expect("supported").matches(&obj));
        assert!(matcher("").expect("empty").is_empty());
        assert_eq!(matcher("metadata.name=p").expect("supported").required_value("metadata.name"), Some("p"));
        assert_eq!(text(&obj, "/spec/n"), "3");
        assert_eq!(text(&obj, "/spec/missing"), "");
    }

    #[test]
    fn a_field_the_kind_does_not_list_is_refused_with_upstreams_words() {
        let e = matcher("spec.nodeName=n1,spec.real=x").expect_err("spec.real is not a label");
        assert_eq!(e, FieldSelectorError::Unsupported { label: "spec.real".into() });
        assert_eq!(e.to_string(), "field label not supported: spec.real");
        // metadata fields are every kind's
        assert!(FieldMatcher::new(Selector::parse("metadata.name=a").expect("parses"), &[]).is_ok());
    }
}
