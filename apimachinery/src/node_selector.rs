//! `NodeSelector` matching, as node affinity and DaemonSets use it: terms are ORed, the expressions and fields
//! of one term ANDed; operators `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`; `matchFields` knows
//! `metadata.name`. A term with neither expressions nor fields matches nothing (Kubernetes semantics).

use k8s_openapi::api::core::v1::{Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};

use crate::labels::Labels;

/// Whether one requirement holds for `value` (the label's or field's value, `None` when absent). A malformed
/// requirement (unknown operator, `Gt`/`Lt` without one integer) matches nothing.
fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let [want] = values else { return false };
            let Ok(want) = want.parse::<i64>() else { return false };
            let Some(have) = value.and_then(|v| v.parse::<i64>().ok()) else { return false };
            if req.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// Whether one `NodeSelectorTerm` matches a node known by its name and labels (what a scheduler cache keeps).
pub fn term_matches_parts(term: &NodeSelectorTerm, name: &str, labels: &Labels) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| requirement_matches(r, (r.key == "metadata.name").then_some(name)))
}

/// Whether one `NodeSelectorTerm` matches the node.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let empty = Labels::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    term_matches_parts(term, node.metadata.name.as_deref().unwrap_or(""), labels)
}

/// A `NodeSelector` matches when any of its terms does.
pub fn matches(sel: &NodeSelector, node: &Node) -> bool {
    sel.node_selector_terms.iter().any(|t| term_matches(t, node))
}

/// [`matches`] over a node's name and labels.
pub fn matches_parts(sel: &NodeSelector, name: &str, labels: &Labels) -> bool {
    sel.node_selector_terms.iter().any(|t| term_matches_parts(t, name, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn terms_are_ored_and_support_gt_lt_and_fields() {
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
        assert!(term_matches(&term(vec![req("cores", "Gt", &["4"])]), &node));
        assert!(!term_matches(&term(vec![req("cores", "Lt", &["4"])]), &node));
        assert!(!term_matches(&term(vec![req("cores", "Gt", &["4", "5"])]), &node), "Gt takes one value");
        assert!(!term_matches(&term(vec![req("cores", "Gt", &["four"])]), &node), "Gt takes an integer");
        assert!(!term_matches(&term(vec![req("zone", "Near", &["a"])]), &node), "unknown operator");
        assert!(!term_matches(&term(vec![req("zone", "In", &["b"])]), &node));
        assert!(term_matches(&term(vec![req("zone", "NotIn", &["b"]), req("gpu", "DoesNotExist", &[])]), &node));
        assert!(!term_matches(&NodeSelectorTerm::default(), &node));
        let fields = NodeSelectorTerm { match_expressions: None, match_fields: Some(vec![req("metadata.name", "In", &["n1"])]) };
        assert!(term_matches(&fields, &node));
        let other_field = NodeSelectorTerm { match_expressions: None, match_fields: Some(vec![req("metadata.uid", "Exists", &[])]) };
        assert!(!term_matches(&other_field, &node), "only metadata.name is a field");
        let sel = NodeSelector { node_selector_terms: vec![term(vec![req("zone", "In", &["b"])]), term(vec![req("zone", "In", &["a"])])] };
        assert!(matches(&sel, &node));
        assert!(matches_parts(&sel, "n1", &labels(&[("zone", "a")])));
    }
}
