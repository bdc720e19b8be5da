//! Label and node selector matching, as the apiserver, scheduler and controllers all need it.
//!
//! Owns: `LabelSelector` (matchLabels + matchExpressions: In, NotIn, Exists, DoesNotExist), equality selectors
//! (ReplicationController, Service) and `NodeSelectorTerm` matching (also Gt/Lt and `matchFields` on
//! `metadata.name`). Pure functions, no I/O. Candidate for sharing with the apiserver's field/label selectors.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Errors for selectors that cannot be evaluated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    /// An operator the API does not define.
    #[error("selector key {key:?}: unknown operator {operator:?}")]
    UnknownOperator { key: String, operator: String },
    /// `In`/`NotIn` with no values, or `Exists` with values.
    #[error("selector key {key:?}: operator {operator} {problem}")]
    BadValues { key: String, operator: String, problem: &'static str },
}

/// Labels map as it appears in object metadata.
pub type Labels = BTreeMap<String, String>;

fn requirement_matches(labels: &Labels, req: &LabelSelectorRequirement) -> Result<bool, SelectorError> {
    let values = req.values.as_deref().unwrap_or_default();
    let have = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => {
            if values.is_empty() {
                return Err(SelectorError::BadValues {
                    key: req.key.clone(),
                    operator: req.operator.clone(),
                    problem: "needs at least one value",
                });
            }
            Ok(have.is_some_and(|v| values.iter().any(|x| x == v)))
        }
        "NotIn" => {
            if values.is_empty() {
                return Err(SelectorError::BadValues {
                    key: req.key.clone(),
                    operator: req.operator.clone(),
                    problem: "needs at least one value",
                });
            }
            Ok(have.is_none_or(|v| !values.iter().any(|x| x == v)))
        }
        "Exists" => Ok(have.is_some()),
        "DoesNotExist" => Ok(have.is_none()),
        other => Err(SelectorError::UnknownOperator { key: req.key.clone(), operator: other.to_string() }),
    }
}

/// Whether `labels` match a set-based selector. An empty selector (no labels, no expressions) matches
/// everything, as in Kubernetes; a `None` selector is handled by the caller (usually: matches nothing).
pub fn label_selector_matches(selector: &LabelSelector, labels: &Labels) -> Result<bool, SelectorError> {
    if let Some(ml) = &selector.match_labels {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return Ok(false);
            }
        }
    }
    if let Some(exprs) = &selector.match_expressions {
        for req in exprs {
            if !requirement_matches(labels, req)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Like [`label_selector_matches`], treating an invalid selector as matching nothing (controllers must not
/// act on objects a broken selector happens to match).
pub fn selector_matches(selector: &LabelSelector, labels: Option<&Labels>) -> bool {
    let empty = Labels::new();
    label_selector_matches(selector, labels.unwrap_or(&empty)).unwrap_or(false)
}

/// True when the selector selects nothing at all would be wrong: an empty `LabelSelector{}` selects everything.
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// Equality-based selector (ReplicationController, Service): every key=value must be present. An empty map
/// matches nothing here, as a Service without selector selects no pods.
pub fn equality_selector_matches(selector: &Labels, labels: Option<&Labels>) -> bool {
    if selector.is_empty() {
        return false;
    }
    let Some(labels) = labels else { return false };
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Render a label selector in the `k=v,k2 in (a,b)` syntax the list API takes as `labelSelector`.
pub fn selector_to_query(selector: &LabelSelector) -> String {
    let mut parts = Vec::new();
    if let Some(ml) = &selector.match_labels {
        for (k, v) in ml {
            parts.push(format!("{k}={v}"));
        }
    }
    if let Some(exprs) = &selector.match_expressions {
        for e in exprs {
            let vals = e.values.clone().unwrap_or_default().join(",");
            match e.operator.as_str() {
                "In" => parts.push(format!("{} in ({vals})", e.key)),
                "NotIn" => parts.push(format!("{} notin ({vals})", e.key)),
                "Exists" => parts.push(e.key.clone()),
                "DoesNotExist" => parts.push(format!("!{}", e.key)),
                _ => {}
            }
        }
    }
    parts.join(",")
}

fn node_requirement_matches(
    req: &NodeSelectorRequirement,
    value: Option<&String>,
) -> Result<bool, SelectorError> {
    let values = req.values.as_deref().unwrap_or_default();
    let bad = |problem| SelectorError::BadValues { key: req.key.clone(), operator: req.operator.clone(), problem };
    match req.operator.as_str() {
        "In" => Ok(value.is_some_and(|v| values.iter().any(|x| x == v))),
        "NotIn" => Ok(value.is_none_or(|v| !values.iter().any(|x| x == v))),
        "Exists" => Ok(value.is_some()),
        "DoesNotExist" => Ok(value.is_none()),
        "Gt" | "Lt" => {
            if values.len() != 1 {
                return Err(bad("needs exactly one value"));
            }
            let want: i64 = values[0].parse().map_err(|_| bad("needs an integer value"))?;
            let Some(have) = value.and_then(|v| v.parse::<i64>().ok()) else { return Ok(false) };
            Ok(if req.operator == "Gt" { have > want } else { have < want })
        }
        other => Err(SelectorError::UnknownOperator { key: req.key.clone(), operator: other.to_string() }),
    }
}

/// Whether one `NodeSelectorTerm` matches the node: all its expressions and fields must match. A term with
/// neither expressions nor fields matches nothing (Kubernetes semantics).
pub fn node_selector_term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let empty = Labels::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    term_matches_parts(term, node.metadata.name.as_deref().unwrap_or(""), labels)
}

/// [`node_selector_term_matches`] over a node's name and labels (what the scheduler cache keeps).
pub fn term_matches_parts(term: &NodeSelectorTerm, name: &str, labels: &Labels) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    for r in exprs {
        if !node_requirement_matches(r, labels.get(&r.key)).unwrap_or(false) {
            return false;
        }
    }
    for r in fields {
        let value = match r.key.as_str() {
            "metadata.name" => Some(name.to_string()),
            _ => None,
        };
        if !node_requirement_matches(r, value.as_ref()).unwrap_or(false) {
            return false;
        }
    }
    true
}

/// A `NodeSelector` matches when any of its terms does (terms are ORed).
pub fn node_selector_matches(sel: &NodeSelector, node: &Node) -> bool {
    sel.node_selector_terms.iter().any(|t| node_selector_term_matches(t, node))
}

/// [`node_selector_matches`] over a node's name and labels.
pub fn node_selector_matches_parts(sel: &NodeSelector, name: &str, labels: &Labels) -> bool {
    sel.node_selector_terms.iter().any(|t| term_matches_parts(t, name, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() { None } else { Some(values.iter().map(|s| s.to_string()).collect()) },
        }
    }

    #[test]
    fn set_based_selector_table() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases: Vec<(LabelSelector, Result<bool, ()>)> = vec![
            (LabelSelector::default(), Ok(true)),
            (LabelSelector { match_labels: Some(labels(&[("app", "web")])), ..Default::default() }, Ok(true)),
            (LabelSelector { match_labels: Some(labels(&[("app", "db")])), ..Default::default() }, Ok(false)),
            (LabelSelector { match_expressions: Some(vec![expr("tier", "In", &["front", "x"])]), ..Default::default() }, Ok(true)),
            (LabelSelector { match_expressions: Some(vec![expr("tier", "NotIn", &["front"])]), ..Default::default() }, Ok(false)),
            (LabelSelector { match_expressions: Some(vec![expr("env", "NotIn", &["prod"])]), ..Default::default() }, Ok(true)),
            (LabelSelector { match_expressions: Some(vec![expr("env", "Exists", &[])]), ..Default::default() }, Ok(false)),
            (LabelSelector { match_expressions: Some(vec![expr("env", "DoesNotExist", &[])]), ..Default::default() }, Ok(true)),
            (LabelSelector { match_expressions: Some(vec![expr("env", "In", &[])]), ..Default::default() }, Err(())),
            (LabelSelector { match_expressions: Some(vec![expr("env", "Like", &["x"])]), ..Default::default() }, Err(())),
        ];
        for (i, (sel, want)) in cases.into_iter().enumerate() {
            assert_eq!(label_selector_matches(&sel, &l).map_err(|_| ()), want, "case {i}");
        }
    }

    #[test]
    fn equality_selector_needs_every_pair_and_empty_matches_nothing() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(equality_selector_matches(&labels(&[("app", "web")]), Some(&l)));
        assert!(!equality_selector_matches(&labels(&[("app", "web"), ("x", "y")]), Some(&l)));
        assert!(!equality_selector_matches(&Labels::new(), Some(&l)));
        assert!(!equality_selector_matches(&labels(&[("app", "web")]), None));
    }

    #[test]
    fn node_selector_terms_are_ored_and_support_gt_lt_and_fields() {
        let node = Node {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("n1".into()),
                labels: Some(labels(&[("zone", "a"), ("cores", "8")])),
                ..Default::default()
            },
            ..Default::default()
        };
        let req = |k: &str, op: &str, v: &[&str]| NodeSelectorRequirement {
            key: k.into(),
            operator: op.into(),
            values: Some(v.iter().map(|s| s.to_string()).collect()),
        };
        let term = |exprs: Vec<NodeSelectorRequirement>| NodeSelectorTerm { match_expressions: Some(exprs), match_fields: None };
        assert!(node_selector_term_matches(&term(vec![req("cores", "Gt", &["4"])]), &node));
        assert!(!node_selector_term_matches(&term(vec![req("cores", "Lt", &["4"])]), &node));
        assert!(!node_selector_term_matches(&term(vec![req("zone", "In", &["b"])]), &node));
        assert!(!node_selector_term_matches(&NodeSelectorTerm::default(), &node));
        let fields = NodeSelectorTerm { match_expressions: None, match_fields: Some(vec![req("metadata.name", "In", &["n1"])]) };
        assert!(node_selector_term_matches(&fields, &node));
        let sel = NodeSelector { node_selector_terms: vec![term(vec![req("zone", "In", &["b"])]), term(vec![req("zone", "In", &["a"])])] };
        assert!(node_selector_matches(&sel, &node));
    }

    #[test]
    fn selector_renders_as_query_string() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![expr("tier", "In", &["a", "b"]), expr("x", "DoesNotExist", &[])]),
        };
        assert_eq!(selector_to_query(&sel), "app=web,tier in (a,b),!x");
    }
}
