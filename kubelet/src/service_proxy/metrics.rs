//! The proxy's metrics, named as kube-proxy names them, rendered in the Prometheus text format for the
//! kubelet's `/metrics`:
//! - `kubeproxy_sync_proxy_rules_duration_seconds` (histogram, kube-proxy's buckets: 1 ms doubling 15 times),
//! - `kubeproxy_sync_proxy_rules_last_timestamp_seconds` (gauge: the last sync that applied),
//! - `kubeproxy_sync_proxy_rules_nftables_total{table}` (gauge: rules and map elements the table holds; named
//!   after iptables mode's `kubeproxy_sync_proxy_rules_iptables_total`),
//! - `kubeproxy_sync_proxy_rules_nftables_sync_failures_total` (counter).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// kube-proxy's `metrics.ExponentialBuckets(0.001, 2, 15)`.
fn buckets() -> impl Iterator<Item = f64> {
    (0..15).map(|i| 0.001 * f64::from(1u32 << i))
}

#[derive(Debug, Default)]
struct State {
    counts: [u64; 15],
    count: u64,
    sum: f64,
    last_timestamp: Option<f64>,
    rules: Option<(String, usize)>,
    failures: u64,
}

static STATE: Mutex<State> = Mutex::new(State { counts: [0; 15], count: 0, sum: 0.0, last_timestamp: None, rules: None, failures: 0 });

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A sync that applied, how long it took, and how many rules the table now holds.
pub fn record_sync(took: Duration, table: &str, rules: usize) {
    let secs = took.as_secs_f64();
    let mut s = state();
    for (i, le) in buckets().enumerate() {
        if secs <= le {
            s.counts[i] += 1;
        }
    }
    s.count += 1;
    s.sum += secs;
    s.last_timestamp = SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs_f64());
    s.rules = Some((table.to_string(), rules));
}

/// A sync nft refused.
pub fn record_failure() {
    state().failures += 1;
}

/// The metrics in the Prometheus text format (nothing before the first sync).
pub fn render() -> String {
    let s = state();
    let mut out = String::new();
    let h = "kubeproxy_sync_proxy_rules_duration_seconds";
    let _ = writeln!(out, "# HELP {h} [ALPHA] SyncProxyRules latency in seconds\n# TYPE {h} histogram");
    for (i, le) in buckets().enumerate() {
        let _ = writeln!(out, "{h}_bucket{{le=\"{le}\"}} {}", s.counts[i]);
    }
    let _ = writeln!(out, "{h}_bucket{{le=\"+Inf\"}} {}\n{h}_sum {}\n{h}_count {}", s.count, s.sum, s.count);
    let g = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";
    let _ = writeln!(out, "# HELP {g} [ALPHA] The last time proxy rules were successfully synced\n# TYPE {g} gauge");
    let _ = writeln!(out, "{g} {}", s.last_timestamp.unwrap_or(0.0));
    let r = "kubeproxy_sync_proxy_rules_nftables_total";
    let _ = writeln!(out, "# HELP {r} [ALPHA] Number of rules and map elements in the proxy's nftables table\n# TYPE {r} gauge");
    if let Some((table, n)) = &s.rules {
        let _ = writeln!(out, "{r}{{table=\"{table}\"}} {n}");
    }
    let f = "kubeproxy_sync_proxy_rules_nftables_sync_failures_total";
    let _ = writeln!(out, "# HELP {f} [ALPHA] Number of proxy syncs nft refused\n# TYPE {f} counter\n{f} {}", s.failures);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_lands_in_its_bucket_and_sets_the_gauges() {
        record_sync(Duration::from_millis(3), "t1", 42);
        let text = render();
        // 3 ms: not in the 1 ms and 2 ms buckets, in 4 ms and above
        let bucket = |le: &str| -> u64 {
            let prefix = format!("kubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"{le}\"}} ");
            text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).and_then(|v| v.parse().ok()).expect("bucket")
        };
        assert!(bucket("0.004") >= 1 && bucket("+Inf") >= bucket("0.004"));
        assert!(bucket("0.002") < bucket("0.004"), "{text}");
        assert!(text.contains("kubeproxy_sync_proxy_rules_nftables_total{table=\"t1\"} 42"), "{text}");
        let ts: f64 = text.lines().find_map(|l| l.strip_prefix("kubeproxy_sync_proxy_rules_last_timestamp_seconds ")).and_then(|v| v.parse().ok()).expect("ts");
        assert!(ts > 1.6e9, "{text}");
    }
}
