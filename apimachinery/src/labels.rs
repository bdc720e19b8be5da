//! Label selectors, as upstream's `k8s.io/apimachinery/pkg/labels`.
//!
//! One parsed form, [`Selector`]: requirements that must all hold (equality `a=b`, `a==b`, `a!=b`; set-based
//! `a in (x,y)`, `a notin (x)`, `a`, `!a`). It comes from the `labelSelector` query syntax
//! ([`Selector::parse`]), from a `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`,
//! [`Selector::from_label_selector`], upstream's `LabelSelectorAsSelector`) or from a plain label set (a
//! ReplicationController's or Service's selector, [`Selector::from_set`]). The empty selector matches
//! everything. [`to_query`] renders a selector object in the query syntax.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

/// A label map as it appears in object metadata.
pub type Labels = BTreeMap<String, String>;

/// A selector that cannot be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {message}")]
pub struct SelectorError {
    /// What is wrong, in upstream's words where it has them.
    pub message: String,
}

fn err(message: impl Into<String>) -> SelectorError {
    SelectorError { message: message.into() }
}

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` (or `key==value`): the label is there with this value.
    Equals(String, String),
    /// `key!=value`: the label is missing or has another value.
    NotEquals(String, String),
    /// `key in (a,b)`: the label is there with one of the values.
    In(String, Vec<String>),
    /// `key notin (a,b)`: the label is missing or has none of the values.
    NotIn(String, Vec<String>),
    /// `key`: the label is there.
    Exists(String),
    /// `!key`: the label is missing.
    DoesNotExist(String),
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// The requirements, all of which must hold.
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches everything.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Whether the selector has no requirement (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses the `labelSelector` query syntax (`app=web,tier in (a,b),!canary`).
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_terms(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_term(term)?);
        }
        Ok(Selector { requirements })
    }

    /// The selector a `metav1.LabelSelector` stands for (upstream's `LabelSelectorAsSelector`): `matchLabels`
    /// as equalities, `matchExpressions` as set requirements. `In`/`NotIn` without values and unknown operators
    /// are errors. A missing (null) selector is the caller's business: controllers read it as "nothing".
    pub fn from_label_selector(sel: &LabelSelector) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::Equals(k.clone(), v.clone()));
        }
        for e in sel.match_expressions.iter().flatten() {
            let key = e.key.clone();
            let values = e.values.clone().unwrap_or_default();
            if matches!(e.operator.as_str(), "In" | "NotIn") && values.is_empty() {
                return Err(err(format!("key {key:?}: for 'in', 'notin' operators, values set can't be empty")));
            }
            requirements.push(set_requirement(key, &e.operator, values)?);
        }
        Ok(Selector { requirements })
    }

    /// The selector of a `metav1.LabelSelector` held as JSON, read as leniently as the apiserver has always read
    /// a workload's `spec.selector`: a missing key or a non-string value reads as "", and `In`/`NotIn` with no
    /// values is a requirement nothing satisfies rather than an error. Only an unknown operator fails, with the
    /// same message as [`Selector::from_label_selector`].
    pub fn from_json(sel: &Value) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        if let Some(m) = sel.get("matchLabels") {
            requirements.extend(set_of(m).into_iter().map(|(k, v)| Requirement::Equals(k, v)));
        }
        for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            let op = e.get("operator").and_then(Value::as_str).unwrap_or_default();
            requirements.push(set_requirement(key, op, values)?);
        }
        Ok(Selector { requirements })
    }

    /// Equalities on every pair of a label set (upstream's `SelectorFromSet`); the empty set matches
    /// everything.
    pub fn from_set(set: &Labels) -> Selector {
        Selector { requirements: set.iter().map(|(k, v)| Requirement::Equals(k.clone(), v.clone())).collect() }
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches the `metadata.labels` of a JSON object.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.requirements.is_empty() {
            return true;
        }
        self.matches(&labels_of(obj))
    }
}

/// The `metadata.labels` of a JSON object (a value that is not a string reads as "").
pub fn labels_of(obj: &Value) -> Labels {
    obj.pointer("/metadata/labels").map(set_of).unwrap_or_default()
}

/// A JSON object of string values as a label set (a ReplicationController's `spec.selector`).
pub fn set_of(map: &Value) -> Labels {
    map.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

/// Whether `labels` match a `metav1.LabelSelector`, an invalid selector matching nothing (controllers must
/// not act on objects a broken selector happens to match). An empty selector matches everything.
pub fn selector_matches(selector: &LabelSelector, labels: Option<&Labels>) -> bool {
    let empty = Labels::new();
    Selector::from_label_selector(selector).is_ok_and(|s| s.matches(labels.unwrap_or(&empty)))
}

/// Whether a `metav1.LabelSelector` has neither labels nor expressions (it then selects everything).
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// An equality selector as a Service uses it: every pair must be present, and an empty selector selects
/// nothing (a Service without a selector has no pods).
pub fn equality_selector_matches(selector: &Labels, labels: Option<&Labels>) -> bool {
    if selector.is_empty() {
        return false;
    }
    let Some(labels) = labels else { return false };
    Selector::from_set(selector).matches(labels)
}

/// A `metav1.LabelSelector` in the query syntax the list API takes as `labelSelector`
/// (`app=web,tier in (a,b),!x`), as `kubectl get -o wide` shows selectors.
pub fn to_query(selector: &LabelSelector) -> String {
    let mut parts = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in selector.match_expressions.iter().flatten() {
        let vals = e.values.as_deref().unwrap_or_default().join(",");
        match e.operator.as_str() {
            "In" => parts.push(format!("{} in ({vals})", e.key)),
            "NotIn" => parts.push(format!("{} notin ({vals})", e.key)),
            "Exists" => parts.push(e.key.clone()),
            "DoesNotExist" => parts.push(format!("!{}", e.key)),
            _ => {}
        }
    }
    parts.join(",")
}

/// [`to_query`] of a selector held as JSON: a `metav1.LabelSelector` object, or a ReplicationController's
/// plain label map.
pub fn to_query_json(sel: &Value) -> String {
    if sel.get("matchLabels").is_some() || sel.get("matchExpressions").is_some() {
        match serde_json::from_value::<LabelSelector>(sel.clone()) {
            Ok(s) => to_query(&s),
            Err(_) => String::new(),
        }
    } else {
        set_of(sel).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }
}

/// The requirement of one `matchExpressions` entry.
fn set_requirement(key: String, operator: &str, values: Vec<String>) -> Result<Requirement, SelectorError> {
    Ok(match operator {
        "In" => Requirement::In(key, values),
        "NotIn" => Requirement::NotIn(key, values),
        "Exists" => Requirement::Exists(key),
        "DoesNotExist" => Requirement::DoesNotExist(key),
        other => return Err(err(format!("{other:?} is not a valid label selector operator"))),
    })
}

/// Splits on commas that are not inside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_set(rest: &str, term: &str) -> Result<Vec<String>, SelectorError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| err(format!("found '{rest}', expected: '(' in {term}")))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

fn check_key(k: &str) -> Result<String, SelectorError> {
    let k = k.trim();
    if k.is_empty() || k.contains(char::is_whitespace) {
        return Err(err(format!("invalid label key \"{k}\"")));
    }
    if let Some(msg) = crate::validation::label_key_error(k) {
        return Err(err(format!("invalid label key \"{k}\": {msg}")));
    }
    Ok(k.to_string())
}

fn parse_term(term: &str) -> Result<Requirement, SelectorError> {
    if let Some(k) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(check_key(k)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(check_key(k)?, v.trim().to_string()));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok(Requirement::Equals(check_key(k)?, v.trim().to_string()));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok(Requirement::Equals(check_key(k)?, v.trim().to_string()));
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = check_key(words[0])?;
        let rest = words[1].trim_start();
        if let Some(r) = rest.strip_prefix("notin") {
            return Ok(Requirement::NotIn(key, parse_set(r, term)?));
        }
        if let Some(r) = rest.strip_prefix("in") {
            return Ok(Requirement::In(key, parse_set(r, term)?));
        }
        return Err(err(format!("found '{rest}', expected: in, notin, =, ==, !=")));
    }
    Ok(Requirement::Exists(check_key(term)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use serde_json::json;

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
    fn query_syntax_equality_and_set_based() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=db", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("app notin (db)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing notin (x)", true),
            ("app=web,tier in (front)", true),
            ("app=web,tier in (back)", false),
            ("", true),
        ];
        for (sel, want) in cases {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn bad_query_selectors_fail() {
        assert!(Selector::parse("app in web").is_err());
        assert!(Selector::parse("a b c").is_err());
        assert!(Selector::parse("bad key!=x").is_err());
        assert!(Selector::parse("-x=y").expect_err("label key").message.contains("invalid label key"));
    }

    #[test]
    fn label_selector_objects_table() {
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
            (LabelSelector { match_expressions: Some(vec![expr("env", "NotIn", &[])]), ..Default::default() }, Err(())),
            (LabelSelector { match_expressions: Some(vec![expr("env", "Like", &["x"])]), ..Default::default() }, Err(())),
        ];
        for (i, (sel, want)) in cases.into_iter().enumerate() {
            let got = Selector::from_label_selector(&sel).map(|s| s.matches(&l)).map_err(|_| ());
            assert_eq!(got, want, "case {i}");
            assert_eq!(selector_matches(&sel, Some(&l)), want == Ok(true), "case {i}: an invalid selector matches nothing");
        }
    }

    #[test]
    fn equality_selector_needs_every_pair_and_empty_matches_nothing() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(equality_selector_matches(&labels(&[("app", "web")]), Some(&l)));
        assert!(!equality_selector_matches(&labels(&[("app", "web"), ("x", "y")]), Some(&l)));
        assert!(!equality_selector_matches(&Labels::new(), Some(&l)));
        assert!(!equality_selector_matches(&labels(&[("app", "web")]), None));
        assert!(Selector::from_set(&Labels::new()).matches(&l), "as a selector, the empty set is everything");
    }

    #[test]
    fn selectors_render_as_query_strings() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![expr("tier", "In", &["a", "b"]), expr("x", "DoesNotExist", &[])]),
        };
        assert_eq!(to_query(&sel), "app=web,tier in (a,b),!x");
        assert_eq!(
            to_query_json(&json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]})),
            "app=web,tier notin (a)"
        );
        assert_eq!(to_query_json(&json!({"app": "web", "tier": "front"})), "app=web,tier=front");
        let round = Selector::parse(&to_query(&sel)).expect("the rendering parses");
        assert_eq!(round, Selector::from_label_selector(&sel).expect("valid"));
    }

    #[test]
    fn json_selectors_are_read_leniently() {
        let l = labels(&[("app", "web"), ("tier", "b")]);
        let s = Selector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]
        }))
        .expect("valid");
        assert!(s.matches(&l));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "c")])));
        let empty_in = Selector::from_json(&json!({"matchExpressions": [{"key": "tier", "operator": "In"}]})).expect("lenient");
        assert!(!empty_in.matches(&l), "an In without values matches nothing");
        let e = Selector::from_json(&json!({"matchExpressions": [{"key": "x", "operator": "Like"}]})).expect_err("operator");
        assert_eq!(e.to_string(), "unable to parse requirement: \"Like\" is not a valid label selector operator");
        assert!(Selector::from_json(&json!({})).expect("valid").is_empty());
    }

    #[test]
    fn labels_of_json_objects() {
        let obj = json!({"metadata": {"labels": {"app": "web", "n": 1}}});
        assert_eq!(labels_of(&obj), labels(&[("app", "web"), ("n", "")]));
        assert!(Selector::parse("app=web").expect("valid").matches_object(&obj));
        assert!(Selector::everything().matches_object(&json!({})));
    }
}
