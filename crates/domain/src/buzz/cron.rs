//! Cron schedules for rollover budgets, in the dialect of the original system's scheduler
//! (Hangfire's Cronos): 5 fields, or 6 with leading seconds; `*`, lists, ranges and steps
//! (`*/5`, `1-15/3`, `50/5`); month and weekday names (`JAN`, `MON`; 0 and 7 are Sunday);
//! `?` as a synonym of `*`; `L` (the last day of the month; `5L` the last Friday), `W` (the
//! weekday nearest a day, `15W`, and `LW`, the last weekday), `#` (`5#3`, the third Friday);
//! the macros `@every_second @every_minute @hourly @daily @midnight @weekly @monthly @yearly
//! @annually`. When both day fields are restricted, a day must match both, as in Cronos
//! (`0 0 13 * FRI` is Friday the 13th), not either as in Vixie cron. Everything is in UTC.
//!
//! Evaluation is croner's (a maintained cron library that implements `L`, `W` and `#`);
//! this module only speaks the Cronos spellings croner reads differently (`?` in any field, a
//! step on a single value) and names the field of an error. Not supported, and refused with
//! a clear error: Cronos' `L-n` offsets and wrap-around ranges such as `22-2`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Duration, OffsetDateTime};

/// A parsed cron expression. Keeps the original text, which is also its serde form.
#[derive(Clone)]
pub struct CronSchedule {
    source: String,
    /// Boxed: a parsed pattern is large, and budgets are enums of which this is one variant.
    cron: Box<Cron>,
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for CronSchedule {}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.source)
    }
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
        "unknown cron macro `{0}` (expected @every_second, @every_minute, @hourly, @daily, \
         @midnight, @weekly, @monthly, @yearly or @annually)"
    )]
    UnknownMacro(String),
    #[error("{field} field: `{value}` is not valid ({reason})")]
    InvalidValue {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{field} field: `{value}` uses {what}, which is not supported")]
    Unsupported {
        field: &'static str,
        value: String,
        what: &'static str,
    },
}

/// The six fields, in order: name, the value a probe uses for the others, the largest value.
const FIELDS: [(&str, &str, u32); 6] = [
    ("second", "0", 59),
    ("minute", "0", 59),
    ("hour", "0", 23),
    ("day-of-month", "*", 31),
    ("month", "*", 12),
    ("day-of-week", "*", 7),
];

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        // Cronos: a day must match both day fields when both are restricted.
        .dom_and_dow(true)
        .build()
}

/// One field in the spelling croner reads: `?` is `*`, and `50/5` is `50-<max>/5`. Refuses
/// what this dialect leaves out, naming it.
fn normalize(field: usize, text: &str) -> Result<String, CronError> {
    let (name, _, max) = FIELDS[field];
    let unsupported = |what| CronError::Unsupported {
        field: name,
        value: text.to_owned(),
        what,
    };
    let mut items = Vec::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(CronError::InvalidValue {
                field: name,
                value: text.to_owned(),
                reason: "a list has an empty item".to_owned(),
            });
        }
        if item == "?" {
            items.push("*".to_owned());
            continue;
        }
        let upper = item.to_ascii_uppercase();
        if upper.starts_with("L-") {
            return Err(unsupported("an offset from the last day (`L-n`)"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some((a, b)) = range.split_once('-')
            && let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>())
            && a > b
        {
            return Err(unsupported("a wrap-around range"));
        }
        match step {
            Some(step) if range.bytes().all(|c| c.is_ascii_digit()) && !range.is_empty() => {
                items.push(format!("{range}-{max}/{step}"));
            }
            _ => items.push(item.to_owned()),
        }
    }
    Ok(items.join(","))
}

fn to_chrono(t: OffsetDateTime) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(t.unix_timestamp(), t.nanosecond())
        .single()
}

fn from_chrono(t: DateTime<Utc>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.timestamp()).ok()
}

impl CronSchedule {
    /// Longer expressions are refused: no legitimate schedule needs more, and it bounds work.
    pub const MAX_LEN: usize = 256;
    /// How far back [`CronSchedule::last_fire_at_or_before`] looks before giving up.
    pub const LOOKBACK: Duration = Duration::days(5 * 366);

    /// Parses an expression of the dialect above; an error names the first bad field.
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
                "@every_second" => "* * * * * *",
                "@every_minute" => "* * * * *",
                "@hourly" => "0 * * * *",
                "@daily" | "@midnight" => "0 0 * * *",
                "@weekly" => "0 0 * * 0",
                "@monthly" => "0 0 1 * *",
                "@yearly" | "@annually" => "0 0 1 1 *",
                _ => return Err(CronError::UnknownMacro(trimmed.to_owned())),
            }
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let six: Vec<&str> = match fields.len() {
            5 => std::iter::once("0").chain(fields.iter().copied()).collect(),
            6 => fields,
            n => return Err(CronError::FieldCount(n)),
        };
        let mut normalized = Vec::with_capacity(6);
        for (i, f) in six.iter().enumerate() {
            normalized.push(normalize(i, f)?);
        }
        let parser = parser();
        // Each field alone first (the others at a neutral value), so an error names its field.
        for (i, f) in normalized.iter().enumerate() {
            let probe: Vec<&str> = FIELDS
                .iter()
                .enumerate()
                .map(|(j, (_, neutral, _))| if i == j { f.as_str() } else { neutral })
                .collect();
            if let Err(e) = parser.parse(&probe.join(" ")) {
                return Err(CronError::InvalidValue {
                    field: FIELDS[i].0,
                    value: six[i].to_owned(),
                    reason: e.to_string(),
                });
            }
        }
        let cron = parser
            .parse(&normalized.join(" "))
            .map_err(|e| CronError::InvalidValue {
                field: "day-of-month",
                value: six[3].to_owned(),
                reason: e.to_string(),
            })?;
        Ok(CronSchedule {
            source: s.to_owned(),
            cron: Box::new(cron),
        })
    }

    /// The expression as it was given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the schedule fires at `t` (compared to the second, in UTC).
    pub fn matches(&self, t: OffsetDateTime) -> bool {
        to_chrono(t).is_some_and(|t| self.cron.is_time_matching(&t).unwrap_or(false))
    }

    /// Whether it ever fires. `0 0 30 2 *` and `0 0 30 2 MON` cannot; rollover budgets refuse
    /// such schedules. (A day rule as rare as Monday the 29th of February fires every 28
    /// years, so it is accepted.)
    pub fn is_satisfiable(&self) -> bool {
        let from = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
        from.is_some_and(|from| self.cron.find_next_occurrence(&from, true).is_ok())
    }

    /// The latest instant ≤ `t` at which the schedule fires (whole seconds), or `None` if it
    /// did not fire within [`CronSchedule::LOOKBACK`].
    pub fn last_fire_at_or_before(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        let found = self
            .cron
            .find_previous_occurrence(&to_chrono(t)?, true)
            .ok()
            .and_then(from_chrono)?;
        match t.checked_sub(Self::LOOKBACK) {
            Some(floor) if found < floor => None,
            _ => Some(found),
        }
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for CronSchedule {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronSchedule::parse(s)
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
    fn both_day_fields_must_match_as_in_cronos() {
        // Friday the 13th (Cronos), not "the 13th or any Friday" (Vixie cron).
        let c = cron("0 0 13 * FRI");
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-05-14 12:00 UTC)),
            Some(datetime!(2023-10-13 00:00 UTC))
        );
        assert_eq!(
            c.last_fire_at_or_before(datetime!(2024-09-13 12:00 UTC)),
            Some(datetime!(2024-09-13 00:00 UTC))
        );
        // The last day of the month, when it is a Friday.
        assert_eq!(
            cron("0 0 L * 5").last_fire_at_or_before(datetime!(2024-05-26 00:00 UTC)),
            Some(datetime!(2023-06-30 00:00 UTC))
        );
    }

    #[test]
    fn the_dialect_of_the_original_system_l_w_and_hash() {
        let at = datetime!(2026-11-29 13:00 UTC); // a Sunday
        for (expr, last) in [
            // The last day of the month.
            ("0 0 L * *", datetime!(2026-10-31 00:00 UTC)),
            // The last weekday of the month: 31 October 2026 is a Saturday.
            ("0 0 LW * *", datetime!(2026-10-30 00:00 UTC)),
            // The third Friday.
            ("0 0 * * 5#3", datetime!(2026-11-20 00:00 UTC)),
            // The last Friday.
            ("0 0 * * 5L", datetime!(2026-11-27 00:00 UTC)),
            ("0 0 * * FRIL", datetime!(2026-11-27 00:00 UTC)),
            // The weekday nearest the 15th: 15 November 2026 is a Sunday, so Monday the 16th.
            ("0 0 15W * *", datetime!(2026-11-16 00:00 UTC)),
            // `1W` never leaves the month: 1 August 2026 is a Saturday, so Monday the 3rd.
            ("0 0 1W 8 *", datetime!(2026-08-03 00:00 UTC)),
            ("0 0 ? * MON#1", datetime!(2026-11-02 00:00 UTC)),
        ] {
            let c = cron(expr);
            assert!(c.is_satisfiable(), "{expr}");
            assert_eq!(c.last_fire_at_or_before(at), Some(last), "{expr}");
            assert!(c.matches(last), "{expr}");
        }
    }

    #[test]
    fn star_in_one_day_field_makes_both_day_fields_required() {
        // Odd days AND Mondays.
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
            ("@every_minute", "* * * * *"),
            ("@every_second", "* * * * * *"),
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

    /// Two expressions fire at the same instants (checked at every minute of two weeks).
    fn same_schedule(a: &str, b: &str) {
        let (a, b) = (cron(a), cron(b));
        let start = datetime!(2024-01-28 00:00 UTC);
        for m in 0..(14 * 24 * 60) {
            let t = start + Duration::minutes(m);
            assert_eq!(a.matches(t), b.matches(t), "{a:?} vs {b:?} at {t}");
        }
    }

    #[test]
    fn names_are_case_insensitive_and_seven_is_sunday() {
        same_schedule("0 0 * jan-Mar sun", "0 0 * 1-3 7");
        same_schedule("0 0 * * 7", "0 0 * * SUN");
        same_schedule("0 0 * * 5-7", "0 0 * * 0,5,6");
        same_schedule("0 0 ? * mOn", "0 0 * * 1");
        same_schedule("1,2,10-20/5 * * * *", "1,2,10,15,20 * * * *");
        same_schedule("50/5 * * * *", "50,55 * * * *");
        same_schedule("? ? ? ? ?", "* * * * *");
    }

    #[test]
    fn invalid_fields_are_rejected_with_clear_messages() {
        let err = |s: &str| CronSchedule::parse(s).unwrap_err();
        let field = |s: &str| match err(s) {
            CronError::InvalidValue { field, .. } | CronError::Unsupported { field, .. } => field,
            other => panic!("{s}: {other:?}"),
        };
        assert!(
            err("61 * * * *")
                .to_string()
                .starts_with("minute field: `61` is not valid"),
            "{}",
            err("61 * * * *")
        );
        assert_eq!(err("* * * *"), CronError::FieldCount(4));
        assert!(err("* * * *").to_string().contains("found 4"));
        assert_eq!(err("0 0 * * * * *"), CronError::FieldCount(7));
        assert_eq!(field("a b c d e"), "minute");
        assert_eq!(field("*/0 * * * *"), "minute");
        assert_eq!(field("1,,2 * * * *"), "minute");
        assert_eq!(field("0 0 0 * *"), "day-of-month");
        assert_eq!(field("0 0 * 13 *"), "month");
        assert_eq!(field("0 0 * * 8"), "day-of-week");
        assert_eq!(field("0 25 * * *"), "hour");
        assert_eq!(field("70 0 0 * * *"), "second");
        assert!(matches!(
            err("5-1 * * * *"),
            CronError::Unsupported {
                field: "minute",
                ..
            }
        ));
        assert!(
            err("0 0 L-1 * *")
                .to_string()
                .contains("an offset from the last day"),
            "Cronos' L-n is named as unsupported"
        );
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
        assert!(
            !cron("0 0 30 2 MON").is_satisfiable(),
            "both day fields must match, and there is no 30 February"
        );
        // Monday the 29th of February: every 28 years. Satisfiable, but not within the
        // five-year lookback of a rollover window.
        let rare = cron("0 0 29 2 MON");
        assert!(rare.is_satisfiable());
        assert_eq!(
            rare.last_fire_at_or_before(datetime!(2026-11-29 00:00 UTC)),
            None
        );
        assert_eq!(
            rare.last_fire_at_or_before(datetime!(2020-01-01 00:00 UTC)),
            Some(datetime!(2016-02-29 00:00 UTC))
        );
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
