//! The query of a request, parsed once into one typed [`Query`] that authorization (the verb, and the name a
//! `metadata.name=` field selector narrows a list to) and the handlers both read, so they cannot disagree on
//! what was asked.
//!
//! Two readings of one query are how the issue-12 bypasses worked: authorization read the first
//! `fieldSelector` and the handler the last, and authorization took only `watch=true|1` as a watch while the
//! handler took more spellings. Here a parameter that takes one value and comes twice is a 400, booleans are read
//! as upstream's query conversion reads them (only `0` and `false` in any case are false; `?watch` with no value
//! is a watch), and selectors are parsed here, once.
//!
//! Must not: be bypassed. Nothing else parses `Request::uri().query()` for parameters this type knows.

use rkube_apimachinery::fields::Selector as FieldSelector;
use rkube_apimachinery::labels::Selector as LabelSelector;

use crate::status::ApiError;

/// Parameters of the meta/v1 options (list, get, create, update, patch, delete) and of the pod log, exec, attach
/// and port-forward options that take one value. Repeating one is refused: no reader can then pick another copy
/// than the one authorization saw. (`dryRun`, exec's `command` and port-forward's `ports` are lists.)
const SINGLE_VALUED: &[&str] = &[
    "watch",
    "allowWatchBookmarks",
    "labelSelector",
    "fieldSelector",
    "resourceVersion",
    "resourceVersionMatch",
    "timeoutSeconds",
    "limit",
    "continue",
    "sendInitialEvents",
    "pretty",
    "fieldManager",
    "fieldValidation",
    "force",
    "propagationPolicy",
    "gracePeriodSeconds",
    "orphanDependents",
    "includeObject",
    "container",
    "follow",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "tailLines",
    "limitBytes",
    "insecureSkipTLSVerifyBackend",
    "stdin",
    "stdout",
    "stderr",
    "tty",
];

/// Query parameters understood on resource requests (unknown ones are ignored, as Kubernetes does).
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `watch`: stream changes instead of answering a list.
    pub watch: bool,
    /// `labelSelector`, parsed (empty: everything).
    pub labels: LabelSelector,
    /// `fieldSelector`, parsed (empty: everything). Which fields a kind supports is checked by the list handler.
    pub fields: FieldSelector,
    /// `limit`: the most items a list page holds (None: all of them; zero or less reads as no limit).
    pub limit: Option<usize>,
    /// `continue`: the token of the previous page, resuming the list at its revision.
    pub continue_token: Option<String>,
    /// `resourceVersion`: which revision a get, list or watch reads from.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`: how `resourceVersion` is read (`Exact`, `NotOlderThan`).
    pub resource_version_match: Option<String>,
    /// `timeoutSeconds`: how long a watch may stay open.
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks`: the watcher accepts BOOKMARK events carrying the latest revision.
    pub allow_watch_bookmarks: bool,
    /// `sendInitialEvents`: a watch starts with the current objects as ADDED events (then an initial-events-end bookmark).
    pub send_initial_events: Option<bool>,
    /// `dryRun=All`: run the write's admission and validation but store nothing.
    pub dry_run: bool,
    /// `fieldManager`: who a write's managed fields are recorded for (server-side apply's owner).
    pub field_manager: Option<String>,
    /// `fieldValidation`: `Strict`, `Warn` or `Ignore` for unknown or duplicate fields in the body.
    pub field_validation: Option<String>,
    /// `force`: server-side apply takes fields owned by other managers instead of failing with a conflict.
    pub force: bool,
    /// `propagationPolicy`: what a delete does with dependents (`Background`, `Foreground`, `Orphan`).
    pub propagation_policy: Option<String>,
    /// `gracePeriodSeconds`: the grace a delete gives (a pod's termination time; 0: at once).
    pub grace_period_seconds: Option<i64>,
    /// `includeObject`: how much of each object a Table row carries (`None`, `Metadata`, `Object`).
    pub include_object: Option<String>,
    /// `pretty`: indent the JSON answer.
    pub pretty: bool,
    /// Every parameter as given, in order (for subresources like log and exec that pass them on).
    pub raw: Vec<(String, String)>,
}

/// A boolean query parameter as upstream's query conversion reads it (`Convert_Slice_string_To_bool`): `0` and
/// `false` in any case are false, anything else, the empty value of a bare `?watch` included, is true.
pub fn query_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("false"))
}

/// Go's `strconv.ParseBool` truths, which upstream uses for `pretty`.
fn strconv_true(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "TRUE" | "true" | "True")
}

fn integer<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ApiError> {
    v.parse().map_err(|_| ApiError::bad_request(format!("invalid value {v:?} for query parameter {key}: not an integer")))
}

impl Query {
    /// Parses a request's raw query (`None` when the URL has none). 400 for a repeated single-valued parameter,
    /// a malformed selector or number, or an unsupported `dryRun`/`fieldValidation` value.
    pub fn parse(q: Option<&str>) -> Result<Query, ApiError> {
        let mut out = Query::default();
        let Some(q) = q else { return Ok(out) };
        let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        for key in SINGLE_VALUED {
            let n = pairs.iter().filter(|(k, _)| k == key).count();
            if n > 1 {
                return Err(ApiError::bad_request(format!(
                    "query parameter {key:?} is given {n} times: it takes one value; send it once"
                )));
            }
        }
        for (k, v) in &pairs {
            match k.as_str() {
                "watch" => out.watch = query_bool(v),
                "labelSelector" => out.labels = LabelSelector::parse(v).map_err(|e| ApiError::bad_request(e.to_string()))?,
                "fieldSelector" => out.fields = FieldSelector::parse(v).map_err(|e| ApiError::bad_request(e.to_string()))?,
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| ApiError::bad_request(format!("invalid limit {v:?}")))?;
                    out.limit = if n > 0 { Some(n as usize) } else { None };
                }
                "continue" => out.continue_token = Some(v.clone()).filter(|s| !s.is_empty()),
                "resourceVersion" => out.resource_version = Some(v.clone()).filter(|s| !s.is_empty()),
                "resourceVersionMatch" => out.resource_version_match = Some(v.clone()).filter(|s| !s.is_empty()),
                "timeoutSeconds" if !v.is_empty() => out.timeout_seconds = Some(integer(k, v)?),
                "allowWatchBookmarks" => out.allow_watch_bookmarks = query_bool(v),
                "sendInitialEvents" => out.send_initial_events = Some(query_bool(v)),
                "dryRun" => {
                    if v != "All" && !v.is_empty() {
                        return Err(ApiError::bad_request(format!("Invalid dry run value: {v:?}: supported values: \"All\"")));
                    }
                    out.dry_run |= v == "All";
                }
                "fieldManager" => out.field_manager = Some(v.clone()),
                "fieldValidation" => {
                    if !matches!(v.as_str(), "Strict" | "Warn" | "Ignore" | "") {
                        return Err(ApiError::bad_request(format!(
                            "fieldValidation invalid value: {v}: must be one of Ignore, Warn or Strict"
                        )));
                    }
                    out.field_validation = Some(v.clone());
                }
                "force" => out.force = query_bool(v),
                "propagationPolicy" => out.propagation_policy = Some(v.clone()),
                "gracePeriodSeconds" if !v.is_empty() => out.grace_period_seconds = Some(integer(k, v)?),
                "includeObject" => out.include_object = Some(v.clone()),
                "pretty" => out.pretty = strconv_true(v),
                _ => {}
            }
        }
        out.raw = pairs;
        Ok(out)
    }

    /// The first value of parameter `key` (single-valued ones come at most once).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Strict unless the client asked to Warn or Ignore (upstream's default for kubectl is Strict via the flag;
    /// for other clients it is Warn: unknown fields are dropped).
    pub fn strict(&self) -> bool {
        self.field_validation.as_deref() == Some("Strict")
    }

    /// The name a list or watch is narrowed to by an equality term on `metadata.name`, as upstream's
    /// RequestInfo reads it for authorization (`RequiresExactMatch`, then only a valid path segment name).
    pub fn exact_name(&self) -> Option<&str> {
        let name = self.fields.required_value("metadata.name")?;
        let valid = !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('%');
        valid.then_some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Query, ApiError> {
        Query::parse(Some(q))
    }

    #[test]
    fn watch_is_read_as_upstream_reads_a_boolean_parameter() {
        for q in ["watch", "watch=", "watch=1", "watch=true", "watch=True", "watch=TRUE", "watch=t", "watch=yes", "watch=2"] {
            assert!(parse(q).expect(q).watch, "{q} is a watch");
        }
        for q in ["", "watch=0", "watch=false", "watch=False", "watch=FALSE", "watch=fAlSe", "watchx=1"] {
            assert!(!parse(q).expect(q).watch, "{q} is not a watch");
        }
    }

    #[test]
    fn repeated_single_valued_parameters_are_refused() {
        for q in [
            "fieldSelector=metadata.name%3Dallowed&fieldSelector=",
            "watch=0&watch=1",
            "labelSelector=a&labelSelector=b",
            "limit=1&limit=2",
            "resourceVersion=1&resourceVersion=2",
            "continue=a&continue=b",
            "timeoutSeconds=1&timeoutSeconds=2",
            "container=a&container=b",
        ] {
            let e = parse(q).expect_err(q);
            assert_eq!((e.code, e.reason), (400, "BadRequest"), "{q}");
            assert!(e.message.contains("is given 2 times"), "{q}: {}", e.message);
        }
        // lists may repeat
        let q = parse("command=echo&command=a&dryRun=All&dryRun=All").expect("lists");
        assert!(q.dry_run);
        assert_eq!(q.raw.iter().filter(|(k, _)| k == "command").count(), 2);
    }

    #[test]
    fn the_name_a_field_selector_narrows_to_is_read_from_the_parsed_selector() {
        assert_eq!(parse("fieldSelector=metadata.name%3Dweb").expect("q").exact_name(), Some("web"));
        assert_eq!(parse("fieldSelector=metadata.name%3D%3Dweb").expect("q").exact_name(), Some("web"));
        assert_eq!(parse("fieldSelector=metadata.name%3D%20web%20").expect("q").exact_name(), Some("web"));
        assert_eq!(parse("fieldSelector=metadata.name!%3Dweb").expect("q").exact_name(), None);
        assert_eq!(parse("fieldSelector=metadata.name%3D").expect("q").exact_name(), None);
        assert_eq!(parse("fieldSelector=metadata.name%3D..").expect("q").exact_name(), None);
        assert_eq!(parse("fieldSelector=metadata.name%3Da%2Fb").expect("q").exact_name(), None);
        assert_eq!(parse("fieldSelector=").expect("q").exact_name(), None);
    }

    #[test]
    fn malformed_values_are_bad_requests() {
        for q in ["timeoutSeconds=x", "gracePeriodSeconds=1.5", "limit=many", "dryRun=Some", "fieldValidation=Loose", "fieldSelector=nonsense"] {
            assert_eq!(parse(q).expect_err(q).code, 400, "{q}");
        }
        assert_eq!(parse("timeoutSeconds=30").expect("q").timeout_seconds, Some(30));
    }
}
