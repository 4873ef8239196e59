//! Cron expressions of the idle config, with the upstream's semantics (the `cron-parser` npm
//! package): six fields with seconds first (`sec min hour day-of-month month day-of-week`), or
//! five without seconds; day of week 0-7 with 0 and 7 both Sunday; `*`, `?`, lists, ranges,
//! steps and month/day names; day of month and day of week combined with OR when both are
//! restricted, as in Vixie cron. (Rust cron crates number days 1-7 from Sunday, so `1-5` would
//! mean Sunday to Thursday there: hence this small matcher.)

use std::str::FromStr;

use chrono::{Datelike, Timelike};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpression {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    dom_restricted: bool,
    dow_restricted: bool,
}

const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(token: &str, names: &[&str], name_base: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(token)) {
        return Ok(i as u32 + name_base);
    }
    token.parse::<u32>().map_err(|_| format!("`{token}` is not a number"))
}

/// Parses one field into a bit set over `min..=max`; returns (bits, restricted).
fn field(text: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut restricted = true;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| format!("bad step in `{item}`"))?),
            None => (item, 1),
        };
        if step == 0 {
            return Err(format!("step 0 in `{item}`"));
        }
        let (lo, hi) = if range == "*" || range == "?" {
            if step == 1 {
                restricted = false;
            }
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, name_base)?, value(b, names, name_base)?)
        } else {
            let v = value(range, names, name_base)?;
            // `n/step` runs from n to the end of the range.
            (v, if item.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("`{item}` is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, restricted))
}

impl FromStr for CronExpression {
    type Err = String;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = expression.split_whitespace().collect();
        let parts: Vec<&str> = match parts.len() {
            6 => parts,
            5 => std::iter::once("0").chain(parts).collect(),
            n => return Err(format!("`{expression}` has {n} fields, expected 5 or 6")),
        };
        let (seconds, _) = field(parts[0], 0, 59, &[], 0)?;
        let (minutes, _) = field(parts[1], 0, 59, &[], 0)?;
        let (hours, _) = field(parts[2], 0, 23, &[], 0)?;
        let (days_of_month, dom_restricted) = field(parts[3], 1, 31, &[], 0)?;
        let (months, _) = field(parts[4], 1, 12, MONTHS, 1)?;
        let (mut days_of_week, dow_restricted) = field(parts[5], 0, 7, DAYS, 0)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week |= 1; // 7 is Sunday too
        }
        Ok(Self { seconds, minutes, hours, days_of_month, months, days_of_week, dom_restricted, dow_restricted })
    }
}

impl CronExpression {
    /// Whether the expression fires at this (local) time, to the second.
    pub fn matches<T: Datelike + Timelike>(&self, t: &T) -> bool {
        let bit = |set: u64, v: u32| set & (1 << v) != 0;
        let dom = bit(self.days_of_month, t.day());
        let dow = bit(self.days_of_week, t.weekday().num_days_from_sunday());
        let day = match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            _ => dom && dow,
        };
        day && bit(self.seconds, t.second())
            && bit(self.minutes, t.minute())
            && bit(self.hours, t.hour())
            && bit(self.months, t.month())
    }

    /// Upstream's "active" test: the expression fires within the next five seconds in `tz`.
    pub fn active_at(&self, now: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> bool {
        (0..=5).any(|s| self.matches(&(now + chrono::Duration::seconds(s)).with_timezone(&tz)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn office_hours_in_a_time_zone() {
        // 2026-11-27 is a Friday; Amsterdam is UTC+1 in November.
        let office: CronExpression = "* * 9-17 * * 1-5".parse().unwrap();
        let ams = chrono_tz::Europe::Amsterdam;
        let cases = [
            (at(2026, 11, 27, 8, 30, 0), true),   // 09:30 local, Friday
            (at(2026, 11, 27, 7, 59, 0), false),  // 08:59 local
            (at(2026, 11, 27, 16, 59, 59), true), // 17:59:59 local
            (at(2026, 11, 27, 17, 0, 0), false),  // 18:00 local
            (at(2026, 11, 28, 10, 0, 0), false),  // Saturday
            (at(2026, 11, 29, 10, 0, 0), false),  // Sunday
            (at(2026, 11, 30, 10, 0, 0), true),   // Monday
        ];
        for (now, active) in cases {
            assert_eq!(office.active_at(now, ams), active, "{now}");
        }
    }

    #[test]
    fn fields_and_edge_cases() {
        let every_second: CronExpression = "* * * * * *".parse().unwrap();
        assert!(every_second.active_at(at(2026, 1, 1, 0, 0, 0), chrono_tz::UTC));
        // Five fields: seconds are 0; active when the next minute starts within 5 s.
        let hourly: CronExpression = "0 * * * *".parse().unwrap();
        assert!(hourly.active_at(at(2026, 1, 1, 9, 59, 56), chrono_tz::UTC));
        assert!(!hourly.active_at(at(2026, 1, 1, 9, 58, 0), chrono_tz::UTC));
        // 7 is Sunday; names; steps; lists.
        let sunday: CronExpression = "* * * * * 7".parse().unwrap();
        assert!(sunday.matches(&at(2026, 11, 29, 12, 0, 0)));
        let names: CronExpression = "*/15 0,30 8-10 * JAN-MAR MON-FRI".parse().unwrap();
        assert!(names.matches(&at(2026, 2, 2, 9, 30, 45)));
        assert!(!names.matches(&at(2026, 2, 2, 9, 30, 44)));
        assert!(!names.matches(&at(2026, 4, 1, 9, 30, 45)));
        // Day of month OR day of week when both are restricted.
        let either: CronExpression = "* * * 1 * 1".parse().unwrap();
        assert!(either.matches(&at(2026, 11, 30, 3, 0, 0)), "a Monday");
        assert!(either.matches(&at(2026, 12, 1, 3, 0, 0)), "the first");
        assert!(!either.matches(&at(2026, 12, 2, 3, 0, 0)));
        for bad in ["* * *", "61 * * * * *", "* * * * * 8", "*/0 * * * * *", "* * * * FOO *", "5-1 * * * * *"] {
            assert!(bad.parse::<CronExpression>().is_err(), "{bad}");
        }
    }
}
