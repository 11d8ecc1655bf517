//! Cron schedules (5 fields, or 6 with leading seconds as Hangfire's Cronos reads them) for
//! rollover budgets, evaluated in UTC, with a bounded backwards search for the last fire time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A parsed cron expression. Keeps the original text, which is also its serde form.
///
/// Day matching follows Vixie cron: when day-of-month and day-of-week are both restricted (neither
/// field starts with `*` or `?`) a day matches if EITHER matches; otherwise both must match.
/// Like Vixie cron, `*/2` counts as unrestricted for this rule because it starts with `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    source: String,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    /// Sunday = bit 0 (7 is folded into 0 while parsing).
    weekdays: u64,
    /// True when both day fields are restricted, so either may match (Vixie rule).
    either_day: bool,
}

/// Why a cron expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("cron expression is empty")]
    Empty,
    #[error("cron expression is longer than {max} characters")]
    TooLong { max: usize },
    #[error(
        "cron expression must have 5 fields (minute hour day-of-month month day-of-week) \
         or 6 (with leading seconds), found {0}"
    )]
    FieldCount(usize),
    #[error(
        "unknown cron macro `{0}` (expected @yearly, @annually, @monthly, @weekly, @daily, \
         @midnight or @hourly)"
    )]
    UnknownMacro(String),
    #[error("{field} field: `{value}` is not a valid value")]
    InvalidValue { field: &'static str, value: String },
    #[error("{field} field: {value} is out of range {min}-{max}")]
    OutOfRange {
        field: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("{field} field: range {start}-{end} runs backwards")]
    ReversedRange {
        field: &'static str,
        start: u32,
        end: u32,
    },
    #[error("{field} field: step `{step}` must be a whole number from 1 to {max}")]
    InvalidStep {
        field: &'static str,
        step: String,
        max: u32,
    },
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names for `min..`, matched case-insensitively.
    names: &'static [&'static str],
    /// `?` is Cronos' "no specific value", only meaningful for the two day fields.
    allows_question: bool,
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    allows_question: false,
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    ..SECOND
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    allows_question: false,
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    allows_question: true,
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    allows_question: false,
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    allows_question: true,
};

impl CronSchedule {
    /// Longer expressions are refused: no legitimate schedule needs more, and it bounds work.
    pub const MAX_LEN: usize = 256;
    /// How far back [`CronSchedule::last_fire_at_or_before`] searches before giving up.
    pub const LOOKBACK: Duration = Duration::days(5 * 366);

    /// Parses 5 fields (`minute hour day-of-month month day-of-week`), 6 fields (leading
    /// seconds), or one of the `@yearly @annually @monthly @weekly @daily @midnight @hourly`
    /// macros.
    pub fn parse(s: &str) -> Result<CronSchedule, CronError> {
        if s.len() > Self::MAX_LEN {
            return Err(CronError::TooLong { max: Self::MAX_LEN });
        }
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(CronError::Empty);
        }
        let expanded = if trimmed.starts_with('@') {
            match trimmed.to_ascii_lowercase().as_str() {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                _ => return Err(CronError::UnknownMacro(trimmed.to_owned())),
            }
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (seconds, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => return Err(CronError::FieldCount(n)),
        };
        let [minute, hour, dom, month, dow] = rest else {
            return Err(CronError::FieldCount(fields.len()));
        };
        // Left to right, so the error names the first bad field.
        let (seconds, _) = parse_field(seconds, &SECOND)?;
        let (minutes, _) = parse_field(minute, &MINUTE)?;
        let (hours, _) = parse_field(hour, &HOUR)?;
        let (days, dom_star) = parse_field(dom, &DAY_OF_MONTH)?;
        let (months, _) = parse_field(month, &MONTH)?;
        let (weekdays, dow_star) = parse_field(dow, &DAY_OF_WEEK)?;
        // 7 is another spelling of Sunday.
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        Ok(CronSchedule {
            source: s.to_owned(),
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            either_day: !dom_star && !dow_star,
        })
    }

    /// The expression as it was given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the schedule fires at `t` (compared to the second, in UTC).
    pub fn matches(&self, t: OffsetDateTime) -> bool {
        let Some(t) = t.checked_to_offset(UtcOffset::UTC) else {
            return false;
        };
        has(self.months, u32::from(u8::from(t.month())))
            && self.day_matches(t.date())
            && has(self.hours, t.hour().into())
            && has(self.minutes, t.minute().into())
            && has(self.seconds, t.second().into())
    }

    /// Whether any calendar date can ever match, ignoring weekdays (which every month has).
    /// `0 0 30 2 *` cannot; rollover budgets refuse such schedules.
    pub fn is_satisfiable(&self) -> bool {
        if self.either_day {
            return true;
        }
        // Longest length of each month in any year (February 29 exists in leap years).
        const LONGEST: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12u32).any(|m| {
            has(self.months, m) && (1..=LONGEST[m as usize - 1]).any(|d| has(self.days, d))
        })
    }

    /// The latest instant ≤ `t` at which the schedule fires (whole seconds; whole minutes for
    /// 5-field expressions), or `None` if it does not fire within [`CronSchedule::LOOKBACK`].
    ///
    /// Skips whole months and days that cannot match and jumps straight to the latest matching
    /// hour/minute/second of a day, so the cost is bounded by the number of days searched.
    pub fn last_fire_at_or_before(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        let t = t.checked_to_offset(UtcOffset::UTC)?;
        // Near the minimum representable date there is simply less history to search.
        let floor = t.checked_sub(Self::LOOKBACK);
        let floor_date = floor.map_or(Date::MIN, |f| f.date());
        let mut date = t.date();
        let mut clock = (t.hour(), t.minute(), t.second());
        const END_OF_DAY: (u8, u8, u8) = (23, 59, 59);
        loop {
            if date < floor_date {
                return None;
            }
            if !has(self.months, u32::from(u8::from(date.month()))) {
                // Jump to the last day of the previous month.
                date = date.replace_day(1).ok()?.previous_day()?;
                clock = END_OF_DAY;
                continue;
            }
            if self.day_matches(date) {
                if let Some((h, m, s)) = self.latest_time_at_or_before(clock) {
                    let time = Time::from_hms(h, m, s).ok()?;
                    let found = PrimitiveDateTime::new(date, time).assume_utc();
                    return match floor {
                        Some(floor) if found < floor => None,
                        _ => Some(found),
                    };
                }
            }
            date = date.previous_day()?;
            clock = END_OF_DAY;
        }
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = has(self.days, date.day().into());
        let dow = has(
            self.weekdays,
            date.weekday().number_days_from_sunday().into(),
        );
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The latest (hour, minute, second) ≤ `(h, m, s)` allowed by the schedule on a matching day.
    fn latest_time_at_or_before(&self, (h, m, s): (u8, u8, u8)) -> Option<(u8, u8, u8)> {
        let (h32, m32, s32) = (u32::from(h), u32::from(m), u32::from(s));
        if has(self.hours, h32) {
            if has(self.minutes, m32) {
                if let Some(sec) = at_or_below(self.seconds, s32) {
                    return Some((h, m, sec));
                }
            }
            if let Some(min) = below(self.minutes, m32) {
                return Some((h, min, highest(self.seconds)?));
            }
        }
        let hour = below(self.hours, h32)?;
        Some((hour, highest(self.minutes)?, highest(self.seconds)?))
    }
}

fn has(set: u64, v: u32) -> bool {
    v < 64 && set & (1u64 << v) != 0
}

/// The largest member of `set` that is ≤ `v`.
fn at_or_below(set: u64, v: u32) -> Option<u8> {
    let mask = if v >= 63 {
        u64::MAX
    } else {
        (1u64 << (v + 1)) - 1
    };
    highest(set & mask)
}

/// The largest member of `set` that is < `v`.
fn below(set: u64, v: u32) -> Option<u8> {
    v.checked_sub(1).and_then(|v| at_or_below(set, v))
}

fn highest(set: u64) -> Option<u8> {
    (set != 0).then(|| 63 - set.leading_zeros() as u8)
}

/// Parses one field into a bit set; the flag says whether it starts with `*` / `?`.
fn parse_field(text: &str, spec: &FieldSpec) -> Result<(u64, bool), CronError> {
    let star = text.starts_with('*') || (spec.allows_question && text.starts_with('?'));
    let mut set = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(parse_step(step, spec)?)),
            None => (item, None),
        };
        let (start, end) = if range == "*" || (spec.allows_question && range == "?") {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (parse_value(a, spec)?, parse_value(b, spec)?)
        } else {
            let a = parse_value(range, spec)?;
            // `a/n` means "from a to the end, every n" (Vixie and Cronos both read it so).
            (a, if step.is_some() { spec.max } else { a })
        };
        if start > end {
            return Err(CronError::ReversedRange {
                field: spec.name,
                start,
                end,
            });
        }
        for v in (start..=end).step_by(step.unwrap_or(1) as usize) {
            set |= 1u64 << v;
        }
    }
    Ok((set, star))
}

fn parse_step(step: &str, spec: &FieldSpec) -> Result<u32, CronError> {
    step.parse::<u32>()
        .ok()
        .filter(|n| (1..=spec.max.max(1)).contains(n))
        .ok_or_else(|| CronError::InvalidStep {
            field: spec.name,
            step: step.to_owned(),
            max: spec.max.max(1),
        })
}

fn parse_value(text: &str, spec: &FieldSpec) -> Result<u32, CronError> {
    let value =
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            text.parse::<u32>().unwrap_or(u32::MAX)
        } else {
            let lower = text.to_ascii_lowercase();
            let index = spec.names.iter().position(|n| *n == lower).ok_or_else(|| {
                CronError::InvalidValue {
                    field: spec.name,
                    value: text.to_owned(),
                }
            })?;
            spec.min + index as u32
        };
    if value < spec.min || value > spec.max {
        return Err(CronError::OutOfRange {
            field: spec.name,
            value,
            min: spec.min,
            max: spec.max,
        });
    }
    Ok(value)
}

impl FromStr for CronSchedule {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronSchedule::parse(s)
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for CronSchedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        CronSchedule::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::{datetime, offset};

    fn cron(s: &str) -> CronSchedule {
        CronSchedule::parse(s).unwrap()
    }

    #[test]
    fn daily_at_midnight_fires_at_the_start_of_the_same_day() {
        let c = cron("0 0 * * *");
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-17 13:45:12 UTC)),
            Some(datetime!(2024-05-17 00:00 UTC))
        );
    }

    #[test]
    fn fire_time_itself_is_included() {
        let c = cron("0 0 * * *");
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-17 00:00 UTC)),
            Some(datetime!(2024-05-17 00:00 UTC))
        );
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-16 23:59:59.999 UTC)),
            Some(datetime!(2024-05-16 00:00 UTC))
        );
    }

    #[test]
    fn every_15_minutes_rounds_down_to_the_quarter_hour() {
        let c = cron("*/15 * * * *");
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-17 13:44:59 UTC)),
            Some(datetime!(2024-05-17 13:30 UTC))
        );
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-17 00:14 UTC)),
            Some(datetime!(2024-05-17 00:00 UTC))
        );
    }

    #[test]
    fn weekdays_at_nine_skip_the_weekend() {
        let c = cron("0 9 * * MON-FRI");
        // 2024-05-19 is a Sunday: the last fire is Friday 09:00.
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-19 12:00 UTC)),
            Some(datetime!(2024-05-17 09:00 UTC))
        );
        // Monday before nine still points at Friday.
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-20 08:59 UTC)),
            Some(datetime!(2024-05-17 09:00 UTC))
        );
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-20 09:00:30 UTC)),
            Some(datetime!(2024-05-20 09:00 UTC))
        );
    }

    #[test]
    fn month_boundary_goes_back_to_the_previous_month() {
        let c = cron("30 18 31 * *");
        // April has no 31st: the last fire before early May is March 31st.
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-02 00:00 UTC)),
            Some(datetime!(2024-03-31 18:30 UTC))
        );
        let c = cron("0 0 1 * *");
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-01-01 00:00 UTC) - Duration::SECOND),
            Some(datetime!(2023-12-01 00:00 UTC))
        );
    }

    #[test]
    fn feb_29_schedule_fires_only_in_leap_years() {
        let c = cron("0 12 29 FEB *");
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2027-06-01 00:00 UTC)),
            Some(datetime!(2024-02-29 12:00 UTC))
        );
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-02-29 11:59 UTC)),
            Some(datetime!(2020-02-29 12:00 UTC))
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        // The 13th OR any Friday.
        let c = cron("0 0 13 * FRI");
        // 2024-05-14 is a Tuesday; the 13th (Monday) is later than Friday the 10th.
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-14 12:00 UTC)),
            Some(datetime!(2024-05-13 00:00 UTC))
        );
        // 2024-05-12 is a Sunday: Friday the 10th matches by weekday alone.
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-12 12:00 UTC)),
            Some(datetime!(2024-05-10 00:00 UTC))
        );
    }

    #[test]
    fn star_in_one_day_field_makes_both_day_fields_required() {
        // `*/2` starts with `*`, so (Vixie) odd days AND Mondays.
        let c = cron("0 0 */2 * MON");
        // Mondays of May 2024: 6, 13, 20, 27; odd ones: 13 and 27.
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-26 00:00 UTC)),
            Some(datetime!(2024-05-13 00:00 UTC))
        );
    }

    #[test]
    fn six_field_schedule_resolves_to_the_second() {
        let c = cron("*/20 30 9 * * *");
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-17 09:30:59 UTC)),
            Some(datetime!(2024-05-17 09:30:40 UTC))
        );
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-17 09:30:19 UTC)),
            Some(datetime!(2024-05-17 09:30:00 UTC))
        );
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-17 09:29:59 UTC)),
            Some(datetime!(2024-05-16 09:30:40 UTC))
        );
    }

    #[test]
    fn macros_match_their_expansions() {
        let t = datetime!(2024-05-17 13:45:12 UTC);
        for (m, plain) in [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@DAILY", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ] {
            assert_eq!(
                cron(m).last_fire_at_or_before(t),
                cron(plain).last_fire_at_or_before(t),
                "{m}"
            );
        }
        assert_eq!(
            cron("@weekly").last_fire_at_or_before(t),
            Some(datetime!(2024-05-12 00:00 UTC))
        );
        assert!(matches!(
            CronSchedule::parse("@fortnightly"),
            Err(CronError::UnknownMacro(_))
        ));
    }

    #[test]
    fn names_are_case_insensitive_and_seven_is_sunday() {
        assert_eq!(cron("0 0 * jan-Mar sun").months, cron("0 0 * 1-3 7").months);
        assert_eq!(cron("0 0 * * 7").weekdays, cron("0 0 * * SUN").weekdays);
        assert_eq!(cron("0 0 * * 5-7").weekdays, cron("0 0 * * 0,5,6").weekdays);
        assert_eq!(cron("0 0 ? * mOn").weekdays, 0b10);
        assert_eq!(
            cron("1,2,10-20/5 * * * *").minutes,
            (1 << 1) | (1 << 2) | (1 << 10) | (1 << 15) | (1 << 20)
        );
        assert_eq!(cron("50/5 * * * *").minutes, (1 << 50) | (1 << 55));
    }

    #[test]
    fn invalid_fields_are_rejected_with_clear_messages() {
        let err = |s: &str| CronSchedule::parse(s).unwrap_err();
        assert_eq!(
            err("61 * * * *").to_string(),
            "minute field: 61 is out of range 0-59"
        );
        assert_eq!(err("* * * *"), CronError::FieldCount(4));
        assert!(err("* * * *").to_string().contains("found 4"));
        assert_eq!(
            err("a b c d e").to_string(),
            "minute field: `a` is not a valid value"
        );
        assert!(matches!(
            err("5-1 * * * *"),
            CronError::ReversedRange { .. }
        ));
        assert!(matches!(err("*/0 * * * *"), CronError::InvalidStep { .. }));
        assert!(matches!(
            err("1,,2 * * * *"),
            CronError::InvalidValue { .. }
        ));
        assert!(matches!(err("? * * * *"), CronError::InvalidValue { .. }));
        assert!(matches!(err("0 0 0 * *"), CronError::OutOfRange { .. }));
        assert!(matches!(err("0 0 * 13 *"), CronError::OutOfRange { .. }));
        assert!(matches!(err("0 0 * * 8"), CronError::OutOfRange { .. }));
        assert_eq!(err("   "), CronError::Empty);
        assert_eq!(
            err(&"* ".repeat(200)),
            CronError::TooLong {
                max: CronSchedule::MAX_LEN
            }
        );
    }

    #[test]
    fn impossible_schedule_never_fires() {
        let c = cron("0 0 30 2 *");
        assert!(!c.is_satisfiable());
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-17 00:00 UTC)),
            None
        );
        assert!(cron("0 0 29 2 *").is_satisfiable());
        assert!(cron("0 0 30 2 MON").is_satisfiable());
    }

    #[test]
    fn non_utc_input_is_answered_in_utc() {
        let c = cron("0 0 * * *");
        let t = datetime!(2024-05-17 01:30 UTC).to_offset(offset!(-5));
        assert_eq!(
            c.last_fire_at_or_before(t),
            Some(datetime!(2024-05-17 00:00 UTC))
        );
    }

    #[test]
    fn serde_round_trips_as_the_original_string() {
        let c = cron("0 0 * * MON");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"0 0 * * MON\"");
        let back: CronSchedule = serde_json::from_str("\"0 0 * * MON\"").unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<CronSchedule>("\"61 * * * *\"").is_err());
    }

    /// Minute-by-minute reference search, only used on schedules that fire at least weekly.
    fn brute_force(c: &CronSchedule, t: OffsetDateTime, minutes: i64) -> Option<OffsetDateTime> {
        let start = t.replace_second(0).ok()?.replace_nanosecond(0).ok()?;
        (0..=minutes)
            .map(|i| start - Duration::minutes(i))
            .find(|&x| c.matches(x))
    }

    fn field(values: Vec<u32>, step: Option<u32>, star: bool) -> String {
        match (star, step) {
            (true, Some(n)) => format!("*/{n}"),
            (true, None) => "*".into(),
            (false, _) => values
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn last_fire_matches_and_nothing_fires_between_it_and_t(
            minutes in prop::collection::vec(0u32..60, 1..4),
            minute_step in prop::option::of(1u32..30),
            minute_star in any::<bool>(),
            hours in prop::collection::vec(0u32..24, 1..3),
            hour_star in any::<bool>(),
            weekdays in prop::collection::vec(0u32..8, 1..3),
            dow_star in any::<bool>(),
            secs in 0i64..(4 * 365 * 86_400),
        ) {
            let expr = format!(
                "{} {} * * {}",
                field(minutes, minute_step, minute_star),
                field(hours, None, hour_star),
                field(weekdays, None, dow_star),
            );
            let c = CronSchedule::parse(&expr).unwrap();
            let t = datetime!(2022-01-01 00:00 UTC) + Duration::seconds(secs);
            let found = c.last_fire_at_or_before(t);
            // Every such schedule fires at least once a week.
            let fire = found.unwrap();
            prop_assert!(fire <= t);
            prop_assert!(c.matches(fire));
            prop_assert_eq!(fire.second(), 0);
            prop_assert_eq!(Some(fire), brute_force(&c, t, 8 * 24 * 60));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = CronSchedule::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_cron_like_text(s in "[0-9*/,?A-Za-z@-]{1,6}( [0-9*/,?A-Za-z-]{1,6}){0,6}") {
            if let Ok(c) = CronSchedule::parse(&s) {
                let t = datetime!(2024-05-17 13:45:12 UTC);
                if let Some(fire) = c.last_fire_at_or_before(t) {
                    prop_assert!(fire <= t && c.matches(fire));
                }
            }
        }
    }
}
