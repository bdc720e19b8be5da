//! k8s-openapi's `Time` (a jiff timestamp) to and from chrono, which rkube computes with.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// `Time` as a chrono UTC timestamp.
pub fn to_chrono(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

/// A chrono timestamp as `Time`, at second precision (what the API keeps).
pub fn from_chrono(t: DateTime<Utc>) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_second_precision() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        assert_eq!(to_chrono(&from_chrono(now)), now);
        let later = DateTime::from_timestamp(1_700_000_000, 900_000_000).expect("valid");
        assert_eq!(to_chrono(&from_chrono(later)), now, "sub-second parts are dropped");
    }
}
