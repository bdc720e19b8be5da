//! Conversions between chrono times (used throughout the kubelet) and the `metav1.Time` of k8s-openapi.

use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A chrono instant as a Kubernetes `Time`.
pub fn to_k8s(t: DateTime<Utc>) -> Time {
    let ts = k8s_openapi::jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    Time(ts)
}

/// A Kubernetes `Time` as a chrono instant.
pub fn from_k8s(t: &Time) -> DateTime<Utc> {
    Utc.timestamp_opt(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = Utc.timestamp_opt(1_700_000_123, 456_000_000).single().expect("valid");
        assert_eq!(from_k8s(&to_k8s(t)), t);
    }
}
