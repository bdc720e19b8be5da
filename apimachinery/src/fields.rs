//! Field selectors, as upstream's `k8s.io/apimachinery/pkg/fields`: `path=value`, `path==value` and
//! `path!=value` terms over dotted JSON paths (`metadata.name`, `spec.nodeName`, `status.phase`), all of which
//! must hold. Which paths a kind supports is the apiserver's business (its resource strategies); this module
//! only parses and matches.

use serde_json::Value;

use crate::labels::SelectorError;

/// One field requirement: `path` equals (or, with `equal` false, differs from) `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The dotted JSON path, e.g. `spec.nodeName`.
    pub path: String,
    /// The value compared with, as a string.
    pub value: String,
    /// True for `=`/`==`, false for `!=`.
    pub equal: bool,
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// The requirements, all of which must hold.
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses the `fieldSelector` query syntax.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for term in s.split(',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (path, value, equal) = if let Some((p, v)) = term.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, v, true)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, v, true)
            } else {
                return Err(SelectorError { message: format!("invalid field selector: '{term}'") });
            };
            requirements.push(Requirement { path: path.trim().to_string(), value: value.trim().to_string(), equal });
        }
        Ok(Selector { requirements })
    }

    /// Whether the selector has no requirement.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value required for `path` by an equality term, if any (used to narrow a list to one key).
    pub fn required_value(&self, path: &str) -> Option<&str> {
        self.requirements.iter().find(|r| r.equal && r.path == path).map(|r| r.value.as_str())
    }

    /// Matches a JSON object; a missing field reads as the empty string (as Kubernetes' field sets do).
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(obj, &r.path);
            (actual == r.value) == r.equal
        })
    }
}

/// The string value of a dotted field path in a JSON object (`""` when absent).
pub fn field_value(obj: &Value, path: &str) -> String {
    // An Event's `source` selector means its reporting component, as in Kubernetes.
    let path = if path == "source" { "source.component" } else { path };
    let mut cur = obj;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selectors_read_nested_paths() {
        let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1", "hostNetwork": true}, "status": {"phase": "Running"}});
        let f = Selector::parse("spec.nodeName=n1,status.phase!=Failed").expect("valid");
        assert!(f.matches_object(&pod));
        assert!(!Selector::parse("spec.nodeName=").expect("valid").matches_object(&pod));
        assert!(Selector::parse("spec.hostNetwork==true").expect("valid").matches_object(&pod));
        assert!(Selector::parse("spec.missing=").expect("valid").matches_object(&pod), "absent reads as empty");
        assert_eq!(Selector::parse("metadata.name=p").expect("valid").required_value("metadata.name"), Some("p"));
        assert_eq!(Selector::parse("metadata.name!=p").expect("valid").required_value("metadata.name"), None);
        assert!(Selector::parse("").expect("valid").is_empty());
    }

    #[test]
    fn terms_without_an_operator_fail() {
        let e = Selector::parse("metadata.name").expect_err("no operator");
        assert_eq!(e.to_string(), "unable to parse requirement: invalid field selector: 'metadata.name'");
    }

    #[test]
    fn event_source_means_the_reporting_component() {
        let ev = json!({"source": {"component": "kubelet"}});
        assert_eq!(field_value(&ev, "source"), "kubelet");
    }
}
