//! Field selectors, as upstream's `k8s.io/apimachinery/pkg/fields`: `path=value`, `path==value` and
//! `path!=value` terms over dotted JSON paths (`metadata.name`, `spec.nodeName`, `status.phase`), all of which
//! must hold. Which paths a kind supports, and how each is read from an object, is the apiserver's business (its
//! resource strategies and `selectors::FieldMatcher`); this module only parses.

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_names_its_required_values() {
        assert_eq!(Selector::parse("metadata.name=p").expect("valid").required_value("metadata.name"), Some("p"));
        assert_eq!(Selector::parse("metadata.name!=p").expect("valid").required_value("metadata.name"), None);
        assert!(Selector::parse("").expect("valid").is_empty());
    }

    #[test]
    fn terms_without_an_operator_fail() {
        let e = Selector::parse("metadata.name").expect_err("no operator");
        assert_eq!(e.to_string(), "unable to parse requirement: invalid field selector: 'metadata.name'");
    }
}
