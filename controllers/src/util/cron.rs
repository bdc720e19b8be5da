//! Standard 5-field cron schedules ("*/5 * * * *", "0 9 * * mon-fri", "@hourly") and the next fire time
//! after a given instant, in UTC (CronJob's `timeZone` other than UTC/Etc/UTC is rejected).

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

/// A schedule string cron cannot read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid schedule {schedule:?}: {problem}")]
pub struct CronError {
    /// The schedule as given.
    pub schedule: String,
    /// What is wrong with it (which field, which value).
    pub problem: String,
}

/// A parsed schedule: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    dom: u64,
    months: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], base: u32) -> Option<u32> {
    if let Ok(v) = s.parse() {
        return Some(v);
    }
    let l = s.to_ascii_lowercase();
    names.iter().position(|n| *n == l).map(|i| i as u32 + base)
}

fn field(f: &str, min: u32, max: u32, names: &[&str], base: u32) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let star = f == "*" || f == "?";
    for part in f.split(',') {
        let (range, stepv) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| format!("bad step in {part:?}"))?),
            None => (part, 1),
        };
        if stepv == 0 {
            return Err(format!("zero step in {part:?}"));
        }
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = value(a, names, base).ok_or_else(|| format!("bad value {a:?}"))?;
            let b = value(b, names, base).ok_or_else(|| format!("bad value {b:?}"))?;
            (a, b)
        } else {
            let v = value(range, names, base).ok_or_else(|| format!("bad value {range:?}"))?;
            (v, if part.contains('/') { max } else { v })
        };
        // Sunday may be written 7
        let sunday7 = max == 6 && hi == 7;
        let hi = if sunday7 { 6 } else { hi };
        if sunday7 {
            bits |= 1;
        }
        if sunday7 && lo == 7 {
            continue;
        }
        if lo < min || hi > max || lo > hi {
            return Err(format!("{part:?} out of range {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += stepv;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    /// Parse a 5-field schedule or a macro (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly).
    pub fn parse(s: &str) -> Result<Self, CronError> {
        let expanded = match s.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let err = |problem: String| CronError { schedule: s.to_string(), problem };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        if f.len() != 5 {
            return Err(err(format!("want 5 fields, got {}", f.len())));
        }
        let (minutes, _) = field(f[0], 0, 59, &[], 0).map_err(err)?;
        let (hours, _) = field(f[1], 0, 23, &[], 0).map_err(err)?;
        let (dom, dom_star) = field(f[2], 1, 31, &[], 0).map_err(err)?;
        let (months, _) = field(f[3], 1, 12, &MONTHS, 1).map_err(err)?;
        let (dow, dow_star) = field(f[4], 0, 6, &DAYS, 0).map_err(err)?;
        Ok(Schedule { minutes, hours, dom, months, dow, dom_star, dow_star })
    }

    fn day_matches(&self, t: &DateTime<Utc>) -> bool {
        let d = self.dom & (1 << t.day()) != 0;
        let w = self.dow & (1 << t.weekday().num_days_from_sunday()) != 0;
        // classic cron: if both are restricted, either may match
        if self.dom_star || self.dow_star {
            d && w
        } else {
            d || w
        }
    }

    /// The first fire time strictly after `after`, or None within the next 5 years.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t = Utc
            .with_ymd_and_hms(after.year(), after.month(), after.day(), after.hour(), after.minute(), 0)
            .single()?
            + Duration::minutes(1);
        let limit = after + Duration::days(366 * 5);
        while t < limit {
            if self.months & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
                t = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?;
                continue;
            }
            if !self.day_matches(&t) {
                t = Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0).single()? + Duration::days(1);
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), t.hour(), 0, 0).single()? + Duration::hours(1);
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t += Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn next_fire_times() {
        let cases = [
            ("*/5 * * * *", "2024-01-01T10:02:30Z", "2024-01-01T10:05:00Z"),
            ("*/5 * * * *", "2024-01-01T10:05:00Z", "2024-01-01T10:10:00Z"),
            ("0 9 * * mon-fri", "2024-01-05T10:00:00Z", "2024-01-08T09:00:00Z"), // Fri after 9 -> Mon
            ("@hourly", "2024-01-01T10:59:59Z", "2024-01-01T11:00:00Z"),
            ("0 0 1 1 *", "2024-06-01T00:00:00Z", "2025-01-01T00:00:00Z"),
            ("30 2 29 2 *", "2024-03-01T00:00:00Z", "2028-02-29T02:30:00Z"),
            ("0 0 * * 7", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z"), // 7 is Sunday
            ("0 0 13 * fri", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z"), // dom OR dow
            ("15,45 1-3/2 * jan *", "2024-01-01T01:20:00Z", "2024-01-01T01:45:00Z"),
        ];
        for (sched, after, want) in cases {
            let s = Schedule::parse(sched).expect(sched);
            assert_eq!(s.next_after(at(after)), Some(at(want)), "{sched} after {after}");
        }
    }

    #[test]
    fn rejects_bad_schedules() {
        for bad in ["* * * *", "60 * * * *", "*/0 * * * *", "a b c d e", "5-1 * * * *"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}
