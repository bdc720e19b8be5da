//! Kubernetes resource quantities (`100m`, `64Mi`, `1.5G`, `2e3`), parsed exactly.
//!
//! A parsed quantity is a decimal mantissa times a power of ten, binary suffixes folded into the mantissa
//! (`1.5Gi` is 1610612736 × 10⁰, `100m` is 1 × 10⁻¹), so `0.1` is one tenth and never a float near it. The
//! accessors round as upstream's `resource.Quantity` does: [`ParsedQuantity::milli_value`] and
//! [`ParsedQuantity::value`] round up, away from zero (`MilliValue()`, `Value()`), and saturate at the `i64`
//! range; [`ParsedQuantity::approximate_f64`] is `AsApproximateFloat64()`. Quantities compare by value
//! (`1` == `1000m` == `0.001k`), as `Cmp` does.
//!
//! The accessors on k8s-openapi's wire type ([`milli_value`], [`value`]) are what callers holding a
//! `Quantity` from an object use.

use std::cmp::Ordering;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A string that is not a Kubernetes quantity.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid quantity {input:?}: {problem} (a number with an optional suffix such as 500m, 64Mi or 1G)")]
pub struct QuantityError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it (`unknown suffix`, `no digits`...).
    pub problem: &'static str,
}

fn err(input: &str, problem: &'static str) -> QuantityError {
    QuantityError { input: input.to_string(), problem }
}

/// Most decimal digits a quantity may have (keeps every value inside `i128` after the largest suffix).
const MAX_DIGITS: usize = 30;
/// Largest decimal exponent (`e30`) a quantity may carry.
const MAX_EXPONENT: i32 = 30;

/// An exact quantity: `(-1)^negative × mantissa × 10^exp10`, normalised (no trailing zeros in the mantissa;
/// zero is `0 × 10⁰`, never negative), so equal values have equal representations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParsedQuantity {
    negative: bool,
    mantissa: i128,
    exp10: i32,
}

impl ParsedQuantity {
    /// Zero.
    pub const ZERO: ParsedQuantity = ParsedQuantity { negative: false, mantissa: 0, exp10: 0 };

    fn new(negative: bool, mut mantissa: i128, mut exp10: i32) -> ParsedQuantity {
        if mantissa == 0 {
            return ParsedQuantity::ZERO;
        }
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exp10 += 1;
        }
        ParsedQuantity { negative, mantissa, exp10 }
    }

    /// Parses `500m`, `64Mi`, `1.5G`, `2e3`, `-1` (surrounding white space ignored).
    pub fn parse(s: &str) -> Result<ParsedQuantity, QuantityError> {
        let t = s.trim();
        let (negative, body) = match t.as_bytes().first() {
            None => return Err(err(s, "empty")),
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            Some(_) => (false, t),
        };
        let num_end = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
        let (num, suffix) = body.split_at(num_end);
        if num.is_empty() || num == "." {
            return Err(err(s, "no digits"));
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        if frac_part.contains('.') {
            return Err(err(s, "more than one decimal point"));
        }
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > MAX_DIGITS {
            return Err(err(s, "too many digits"));
        }
        let mut mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| err(s, "bad digits"))? };
        let mut exp10 = -(frac_part.len() as i32);
        let binary: i128 = match suffix {
            "" => 1,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "Pi" => 1 << 50,
            "Ei" => 1 << 60,
            "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => {
                exp10 += match suffix {
                    "n" => -9,
                    "u" => -6,
                    "m" => -3,
                    "k" => 3,
                    "M" => 6,
                    "G" => 9,
                    "T" => 12,
                    "P" => 15,
                    _ => 18,
                };
                1
            }
            other if other.starts_with(['e', 'E']) => {
                let e: i32 = other[1..].parse().map_err(|_| err(s, "bad exponent"))?;
                if e.abs() > MAX_EXPONENT {
                    return Err(err(s, "exponent out of range"));
                }
                exp10 += e;
                1
            }
            _ => return Err(err(s, "unknown suffix")),
        };
        mantissa = mantissa.checked_mul(binary).ok_or_else(|| err(s, "too large"))?;
        Ok(ParsedQuantity::new(negative, mantissa, exp10))
    }

    /// The value times 10^`scale`, rounded up (away from zero), saturated at the `i64` range.
    fn scaled(&self, scale: i32) -> i64 {
        let exp = self.exp10 + scale;
        let magnitude: i128 = if exp >= 0 {
            10i128.checked_pow(exp as u32).and_then(|f| self.mantissa.checked_mul(f)).unwrap_or(i128::MAX)
        } else {
            match 10i128.checked_pow(exp.unsigned_abs()) {
                Some(d) => self.mantissa / d + i128::from(self.mantissa % d != 0),
                // smaller than one unit at this scale, but not zero: rounds up to one
                None => i128::from(self.mantissa != 0),
            }
        };
        let v = if self.negative { -magnitude } else { magnitude };
        v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Milli-units, rounded up (cpu: `100m` → 100, `1` → 1000, `1500u` → 2): upstream's `MilliValue()`.
    pub fn milli_value(&self) -> i64 {
        self.scaled(3)
    }

    /// Whole units, rounded up (memory: `64Mi` → 67108864, `1k` → 1000, `100m` → 1): upstream's `Value()`.
    pub fn value(&self) -> i64 {
        self.scaled(0)
    }

    /// The value as a float, approximately (`500m` → 0.5): upstream's `AsApproximateFloat64()`.
    pub fn approximate_f64(&self) -> f64 {
        let v = self.mantissa as f64 * 10f64.powi(self.exp10);
        if self.negative {
            -v
        } else {
            v
        }
    }

    /// Whether the value is above zero.
    pub fn is_positive(&self) -> bool {
        !self.negative && self.mantissa != 0
    }

    /// The exact sum; `None` when it does not fit (values far beyond any resource amount).
    pub fn checked_add(&self, other: &ParsedQuantity) -> Option<ParsedQuantity> {
        let exp = self.exp10.min(other.exp10);
        let signed = |q: &ParsedQuantity| -> Option<i128> {
            let m = q.mantissa.checked_mul(10i128.checked_pow((q.exp10 - exp) as u32)?)?;
            Some(if q.negative { -m } else { m })
        };
        let sum = signed(self)?.checked_add(signed(other)?)?;
        Some(ParsedQuantity::new(sum < 0, sum.abs(), exp))
    }

    /// `|self|` against `|other|`, exactly.
    fn cmp_magnitude(&self, other: &ParsedQuantity) -> Ordering {
        if self.mantissa == 0 || other.mantissa == 0 {
            return self.mantissa.cmp(&other.mantissa);
        }
        // bring the larger exponent down to the smaller: a mantissa that overflows doing so is the larger
        let shifted = |m: i128, by: i32| 10i128.checked_pow(by as u32).and_then(|f| m.checked_mul(f));
        if self.exp10 >= other.exp10 {
            match shifted(self.mantissa, self.exp10 - other.exp10) {
                Some(a) => a.cmp(&other.mantissa),
                None => Ordering::Greater,
            }
        } else {
            match shifted(other.mantissa, other.exp10 - self.exp10) {
                Some(b) => self.mantissa.cmp(&b),
                None => Ordering::Less,
            }
        }
    }
}

impl Ord for ParsedQuantity {
    fn cmp(&self, other: &ParsedQuantity) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for ParsedQuantity {
    fn partial_cmp(&self, other: &ParsedQuantity) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for ParsedQuantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<ParsedQuantity, QuantityError> {
        ParsedQuantity::parse(s)
    }
}

/// Parses a quantity string.
pub fn parse(s: &str) -> Result<ParsedQuantity, QuantityError> {
    ParsedQuantity::parse(s)
}

/// Milli-units of a `Quantity` (cpu in millicores), rounded up.
pub fn milli_value(q: &Quantity) -> Result<i64, QuantityError> {
    parse(&q.0).map(|q| q.milli_value())
}

/// Whole units of a `Quantity` (memory in bytes), rounded up.
pub fn value(q: &Quantity) -> Result<i64, QuantityError> {
    parse(&q.0).map(|q| q.value())
}

/// A quantity string as an approximate float (`"500m"` → 0.5, `"1Ki"` → 1024.0).
pub fn approximate_f64(s: &str) -> Result<f64, QuantityError> {
    parse(s).map(|q| q.approximate_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> ParsedQuantity {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn milli_and_whole_values_round_up_like_kubernetes() {
        let cases: &[(&str, i64, i64)] = &[
            // input, MilliValue, Value
            ("100m", 100, 1),
            ("1", 1000, 1),
            ("0.5", 500, 1),
            ("0.25", 250, 1),
            ("0.3", 300, 1),
            ("2", 2000, 2),
            ("1k", 1_000_000, 1000),
            ("64Mi", 64 * 1024 * 1024 * 1000, 64 * 1024 * 1024),
            ("1Gi", 1024 * 1024 * 1024 * 1000, 1024 * 1024 * 1024),
            ("1.5G", 1_500_000_000_000, 1_500_000_000),
            ("1.5Gi", 1_610_612_736_000, 1_610_612_736),
            ("2e3", 2_000_000, 2000),
            ("1E3", 1_000_000, 1000),
            ("1500u", 2, 1),
            ("1n", 1, 1),
            ("128974848", 128_974_848_000, 128_974_848),
            ("0", 0, 0),
            ("0.000", 0, 0),
            ("+5", 5000, 5),
            ("-100m", -100, -1),
            (" 64Mi ", 64 * 1024 * 1024 * 1000, 64 * 1024 * 1024),
            ("8Ei", i64::MAX, i64::MAX),
        ];
        for (input, m, v) in cases {
            assert_eq!(q(input).milli_value(), *m, "milli {input}");
            assert_eq!(q(input).value(), *v, "value {input}");
        }
    }

    #[test]
    fn garbage_is_refused_with_what_is_wrong() {
        for (bad, problem) in [
            ("", "empty"),
            ("abc", "no digits"),
            ("1.2.3", "more than one decimal point"),
            ("10Qi", "unknown suffix"),
            ("m", "no digits"),
            ("1e", "bad exponent"),
            (".", "no digits"),
            ("1e99", "exponent out of range"),
            ("1-2", "unknown suffix"),
            ("1234567890123456789012345678901", "too many digits"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.problem, problem, "{bad:?}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn equal_values_compare_equal_whatever_their_spelling() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1e3"), q("1000"));
        assert_eq!(q("0.001k"), q("1"));
        assert_eq!(q("64Mi"), q("67108864"));
        assert_eq!(q("0"), q("-0"));
        assert!(q("100m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("-1") < q("0"));
        assert!(q("-2") < q("-1"));
        assert!(q("1e30") > q("999999999999999999999999999999n"));
    }

    #[test]
    fn sums_are_exact() {
        assert_eq!(q("100m").checked_add(&q("900m")), Some(q("1")));
        assert_eq!(q("1Gi").checked_add(&q("-1Gi")), Some(ParsedQuantity::ZERO));
        assert_eq!(q("0.1").checked_add(&q("0.2")), Some(q("300m")));
    }

    #[test]
    fn floats_are_approximations_of_the_exact_value() {
        assert_eq!(approximate_f64("500m"), Ok(0.5));
        assert_eq!(approximate_f64("1Ki"), Ok(1024.0));
        assert_eq!(approximate_f64("1.5G"), Ok(1.5e9));
        assert!(approximate_f64("x").is_err());
    }

    #[test]
    fn wire_quantities_read_through_the_accessors() {
        let w = |s: &str| Quantity(s.to_string());
        assert_eq!(milli_value(&w("250m")), Ok(250));
        assert_eq!(value(&w("32Mi")), Ok(32 << 20));
        assert!(value(&w("lots")).is_err());
    }
}
