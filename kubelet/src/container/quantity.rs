//! Kubernetes resource quantities (`500m`, `64Mi`, `1.5`, `2e3`) as numbers: CPU in millicores, memory in bytes.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity string that is not a Kubernetes quantity.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid quantity {value:?}: expected a number with an optional suffix such as 500m, 64Mi or 1G")]
pub struct QuantityError {
    pub value: String,
}

/// The value of `q` as a float (`"500m"` → 0.5, `"1Ki"` → 1024).
pub fn parse(q: &str) -> Result<f64, QuantityError> {
    let err = || QuantityError { value: q.to_string() };
    let s = q.trim();
    if s.is_empty() {
        return Err(err());
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| err())?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| err())?;
            10f64.powi(exp)
        }
        _ => return Err(err()),
    };
    Ok(n * mult)
}

/// CPU in millicores, rounded up (`"100m"` → 100, `"1"` → 1000).
pub fn cpu_millis(q: &Quantity) -> Result<i64, QuantityError> {
    Ok((parse(&q.0)? * 1000.0).ceil() as i64)
}

/// Memory (or any byte quantity) in bytes, rounded up.
pub fn bytes(q: &Quantity) -> Result<i64, QuantityError> {
    Ok(parse(&q.0)?.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        let q = |s: &str| Quantity(s.to_string());
        assert_eq!(cpu_millis(&q("100m")), Ok(100));
        assert_eq!(cpu_millis(&q("1")), Ok(1000));
        assert_eq!(cpu_millis(&q("0.25")), Ok(250));
        assert_eq!(cpu_millis(&q("1500u")), Ok(2));
        assert_eq!(bytes(&q("64Mi")), Ok(64 << 20));
        assert_eq!(bytes(&q("1G")), Ok(1_000_000_000));
        assert_eq!(bytes(&q("1e3")), Ok(1000));
        assert_eq!(bytes(&q("128974848")), Ok(128_974_848));
        assert!(bytes(&q("12Qi")).is_err());
        assert!(bytes(&q("")).is_err());
        assert!(bytes(&q("abc")).is_err());
    }
}
