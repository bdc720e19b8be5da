//! Kubernetes resource quantities ("100m", "64Mi", "1.5G", "2e3") as integers.
//!
//! Owns parsing only: cpu in millicores, memory and other resources in whole units, both rounded up as
//! Kubernetes' `MilliValue()`/`Value()` do. Pure; a candidate for sharing with the apiserver and kubelet.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity string that is not a Kubernetes quantity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid quantity {input:?}: {problem}")]
pub struct QuantityError {
    pub input: String,
    pub problem: &'static str,
}

fn err(input: &str, problem: &'static str) -> QuantityError {
    QuantityError { input: input.to_string(), problem }
}

/// Parse `s` and return its value multiplied by 10^`scale` (scale 3 = milli units), rounded up.
fn parse_scaled(s: &str, scale: i32) -> Result<i128, QuantityError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(err(s, "empty"));
    }
    let (neg, body) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let num_end = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
    let (num, suffix) = body.split_at(num_end);
    if num.is_empty() || num == "." {
        return Err(err(s, "no digits"));
    }
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if frac_part.contains('.') {
        return Err(err(s, "more than one decimal point"));
    }
    let digits = format!("{int_part}{frac_part}");
    if digits.len() > 30 {
        return Err(err(s, "too many digits"));
    }
    let mut mantissa: i128 = digits.parse().map_err(|_| err(s, "bad digits"))?;
    let mut exp10: i32 = -(frac_part.len() as i32);
    let mut binary: i128 = 1;
    match suffix {
        "" => {}
        "Ki" => binary = 1 << 10,
        "Mi" => binary = 1 << 20,
        "Gi" => binary = 1 << 30,
        "Ti" => binary = 1 << 40,
        "Pi" => binary = 1 << 50,
        "Ei" => binary = 1 << 60,
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        other if other.starts_with('e') || other.starts_with('E') => {
            let e: i32 = other[1..].parse().map_err(|_| err(s, "bad exponent"))?;
            if e.abs() > 30 {
                return Err(err(s, "exponent out of range"));
            }
            exp10 += e;
        }
        _ => return Err(err(s, "unknown suffix")),
    }
    mantissa = mantissa.checked_mul(binary).ok_or_else(|| err(s, "too large"))?;
    exp10 += scale;
    let value = if exp10 >= 0 {
        let f = 10i128.checked_pow(exp10 as u32).ok_or_else(|| err(s, "too large"))?;
        mantissa.checked_mul(f).ok_or_else(|| err(s, "too large"))?
    } else {
        let d = 10i128.checked_pow((-exp10) as u32).ok_or_else(|| err(s, "too small"))?;
        // round away from zero like resource.Quantity's Value()/MilliValue()
        (mantissa + d - 1) / d
    };
    Ok(if neg { -value } else { value })
}

fn clamp(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Parse to milli-units (cpu: "100m" -> 100, "1" -> 1000).
pub fn parse_milli(s: &str) -> Result<i64, QuantityError> {
    parse_scaled(s, 3).map(clamp)
}

/// Parse to whole units (memory: "64Mi" -> 67108864, "1k" -> 1000).
pub fn parse_value(s: &str) -> Result<i64, QuantityError> {
    parse_scaled(s, 0).map(clamp)
}

/// Milli value of a `Quantity`; invalid quantities count as 0 (the apiserver validates them on write).
pub fn milli(q: &Quantity) -> i64 {
    parse_milli(&q.0).unwrap_or(0)
}

/// Whole value of a `Quantity`; invalid quantities count as 0.
pub fn value(q: &Quantity) -> i64 {
    parse_value(&q.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_kubernetes() {
        let cases: &[(&str, i64, i64)] = &[
            // input, milli, value (rounded up)
            ("100m", 100, 1),
            ("1", 1000, 1),
            ("0.5", 500, 1),
            ("2", 2000, 2),
            ("1k", 1_000_000, 1000),
            ("64Mi", 64 * 1024 * 1024 * 1000, 64 * 1024 * 1024),
            ("1Gi", 1024 * 1024 * 1024 * 1000, 1024 * 1024 * 1024),
            ("1.5G", 1_500_000_000_000, 1_500_000_000),
            ("2e3", 2_000_000, 2000),
            ("1500u", 2, 1),
            ("0", 0, 0),
            ("-100m", -100, -1),
        ];
        for (input, m, v) in cases {
            assert_eq!(parse_milli(input), Ok(*m), "milli {input}");
            assert_eq!(parse_value(input), Ok(*v), "value {input}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "1.2.3", "10Qi", "m", "1e", "."] {
            assert!(parse_milli(bad).is_err(), "{bad:?} should fail");
        }
    }
}
