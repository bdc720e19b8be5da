//! Prometheus metrics (`/metrics`, text format): request counts by verb, resource and code, a request latency
//! histogram, and the number of open watches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Server metrics; cheap to update from every request.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    watchers: AtomicI64,
}

impl Metrics {
    /// Counts a finished request by verb, resource and status code and, except watches, records its latency.
    pub fn observe(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((verb.to_string(), resource.to_string(), code)).or_default() += 1;
        }
        if verb == "watch" {
            return;
        }
        let secs = elapsed.as_secs_f64();
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry((verb.to_string(), resource.to_string())).or_default();
            if h.counts.is_empty() {
                h.counts = vec![0; BUCKETS.len()];
            }
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        }
    }

    /// A watch started.
    pub fn watchers_inc(&self) {
        self.watchers.fetch_add(1, Ordering::Relaxed);
    }

    /// A watch ended.
    pub fn watchers_dec(&self) {
        self.watchers.fetch_sub(1, Ordering::Relaxed);
    }

    /// How many watches are open now.
    pub fn watchers(&self) -> i64 {
        self.watchers.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out by verb, resource and HTTP response code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((verb, resource, code), n) in r.iter() {
                out.push_str(&format!("apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {n}\n"));
            }
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb and resource.\n");
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for ((verb, resource), h) in l.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    out.push_str(&format!(
                        "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",resource=\"{resource}\",le=\"{b}\"}} {}\n",
                        h.counts[i]
                    ));
                }
                out.push_str(&format!("apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",resource=\"{resource}\",le=\"+Inf\"}} {}\n", h.count));
                out.push_str(&format!("apiserver_request_duration_seconds_sum{{verb=\"{verb}\",resource=\"{resource}\"}} {}\n", h.sum));
                out.push_str(&format!("apiserver_request_duration_seconds_count{{verb=\"{verb}\",resource=\"{resource}\"}} {}\n", h.count));
            }
        }
        out.push_str("# HELP apiserver_longrunning_requests Number of open watch requests.\n# TYPE apiserver_longrunning_requests gauge\n");
        out.push_str(&format!("apiserver_longrunning_requests{{verb=\"watch\"}} {}\n", self.watchers()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let m = Metrics::default();
        m.observe("create", "pods", 201, Duration::from_millis(3));
        m.observe("create", "pods", 201, Duration::from_millis(30));
        let text = m.render();
        assert!(text.contains("apiserver_request_total{verb=\"create\",resource=\"pods\",code=\"201\"} 2"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("apiserver_request_duration_seconds_count{verb=\"create\",resource=\"pods\"} 2"));
    }
}
