//! The per-(user, app) Buzz budgets of SPEC section 6 / research (e): their exact JSON shapes,
//! validation, the consent form's `buzz_limit` field, and where each budget's window starts.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use time::{Duration, OffsetDateTime};

use crate::buzz::cron::CronSchedule;
use crate::error::Error;

/// A Buzz pool (`yellow`, `blue`, ...). Normalised to lowercase because the orchestrator echoes
/// PascalCase (`Blue`) while users type lowercase; both must name the same pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub const MAX_LEN: usize = 32;

    /// 1..=32 ASCII letters, digits, `-` or `_`, any case; stored lowercase.
    pub fn parse(s: &str) -> Result<Currency, Error> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Currency(s.to_ascii_lowercase()))
        } else {
            Err(Error::invalid_request(
                "currency must be 1-32 ASCII letters, digits, '-' or '_'",
            ))
        }
    }

    /// The default pool, `yellow`.
    pub fn yellow() -> Currency {
        Currency("yellow".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    fn default() -> Self {
        Currency::yellow()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Currency::parse(&s).map_err(|e| serde::de::Error::custom(e.description()))
    }
}

/// The window unit of a sliding budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Window {
    /// The length of one unit. A month is a fixed 30 days: a sliding window must have one
    /// length whatever the calendar says (the consent page's "per 30 days" relies on it).
    pub fn duration(self) -> Duration {
        match self {
            Window::Second => Duration::SECOND,
            Window::Minute => Duration::MINUTE,
            Window::Hour => Duration::HOUR,
            Window::Day => Duration::DAY,
            Window::Week => Duration::WEEK,
            Window::Month => Duration::days(30),
        }
    }

    /// The largest `unit` for which `unit × window` stays within [`Budget::MAX_SPAN`].
    pub fn max_unit(self) -> u32 {
        let span = Budget::MAX_SPAN.whole_seconds();
        let one = self.duration().whole_seconds().max(1);
        u32::try_from(span / one).unwrap_or(u32::MAX)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Second => "second",
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Week => "week",
            Window::Month => "month",
        }
    }
}

/// One cap. Exactly the research (e) shapes:
/// `{type:"absolute", limit, currencies?}`, `{type:"sliding", limit, window, unit, currencies?}`,
/// `{type:"rollover", limit, cron, currencies?}`. Serde checks the shape; [`Budget::validate`]
/// checks the ranges serde cannot (`limit > 0`, `unit > 0`, non-empty `currencies`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum Budget {
    /// At most `limit` over all time.
    Absolute {
        limit: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currencies: Option<Vec<Currency>>,
    },
    /// At most `limit` in any trailing `unit × window`.
    Sliding {
        limit: u64,
        window: Window,
        unit: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currencies: Option<Vec<Currency>>,
    },
    /// At most `limit` since the schedule last fired (the allowance resets at each fire).
    Rollover {
        limit: u64,
        cron: CronSchedule,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currencies: Option<Vec<Currency>>,
    },
}

impl Budget {
    /// The longest sliding window accepted: about ten years.
    pub const MAX_SPAN: Duration = Duration::days(3660);
    /// More currencies than this in one budget is not a real configuration.
    pub const MAX_CURRENCIES: usize = 16;

    /// Checks what the types cannot: `limit > 0`; `0 < unit` with `unit × window` ≤ about ten
    /// years; `currencies`, when present, non-empty and at most 16; a rollover cron that can
    /// ever fire (`0 0 30 2 *` cannot).
    pub fn validate(&self) -> Result<(), Error> {
        if self.limit() == 0 {
            return Err(Error::invalid_request(
                "budget limit must be greater than 0",
            ));
        }
        if let Some(currencies) = self.currencies() {
            if currencies.is_empty() || currencies.len() > Self::MAX_CURRENCIES {
                return Err(Error::invalid_request(
                    "budget currencies must list 1 to 16 currencies, or be omitted",
                ));
            }
        }
        match self {
            Budget::Absolute { .. } => Ok(()),
            Budget::Sliding { window, unit, .. } => {
                if *unit == 0 || *unit > window.max_unit() {
                    Err(Error::invalid_request(format!(
                        "sliding budget unit must be 1 to {} for window {}",
                        window.max_unit(),
                        window.as_str()
                    )))
                } else {
                    Ok(())
                }
            }
            Budget::Rollover { cron, .. } => {
                if cron.is_satisfiable() {
                    Ok(())
                } else {
                    Err(Error::invalid_request("rollover cron never fires"))
                }
            }
        }
    }

    pub fn limit(&self) -> u64 {
        match self {
            Budget::Absolute { limit, .. }
            | Budget::Sliding { limit, .. }
            | Budget::Rollover { limit, .. } => *limit,
        }
    }

    /// The currencies this budget is narrowed to; `None` means every currency.
    pub fn currencies(&self) -> Option<&[Currency]> {
        match self {
            Budget::Absolute { currencies, .. }
            | Budget::Sliding { currencies, .. }
            | Budget::Rollover { currencies, .. } => currencies.as_deref(),
        }
    }

    /// Whether a spend in `currency` counts against this budget.
    pub fn applies_to(&self, currency: &Currency) -> bool {
        self.currencies().is_none_or(|cs| cs.contains(currency))
    }

    /// The first instant whose spends count at `now` (`None` = all time):
    /// absolute → `None`; sliding → `now − unit × window`; rollover → the last cron fire ≤ now.
    ///
    /// A rollover schedule that has not fired within [`CronSchedule::LOOKBACK`] (5 years; e.g.
    /// a weekday-and-date combination that is rare) counts the last 5 years rather than all
    /// time: counting from the beginning of time would turn a resetting cap into a lifetime one.
    pub fn window_start(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Budget::Absolute { .. } => None,
            Budget::Sliding { window, unit, .. } => {
                // Saturating: an overlong span (only reachable unvalidated) means "all time".
                let span = window.duration().saturating_mul(i32::try_from(*unit).ok()?);
                now.checked_sub(span)
            }
            Budget::Rollover { cron, .. } => cron
                .last_fire_at_or_before(now)
                .or_else(|| now.checked_sub(CronSchedule::LOOKBACK)),
        }
    }

    /// A short human label for the window, as the Connected Apps page shows it.
    pub fn window_label(&self) -> String {
        match self {
            Budget::Absolute { .. } => "in total".to_owned(),
            Budget::Sliding {
                window: Window::Day,
                unit,
                ..
            } => {
                if *unit == 1 {
                    "per 24 hours".to_owned()
                } else {
                    format!("per {unit} days")
                }
            }
            Budget::Sliding { window, unit, .. } => {
                if *unit == 1 {
                    format!("per {}", window.as_str())
                } else {
                    format!("per {unit} {}s", window.as_str())
                }
            }
            Budget::Rollover { cron, .. } => format!("per period (resets on `{cron}`)"),
        }
    }
}

/// The budgets of one (user, app) consent. Empty means no cap (`null` and `[]` both read so).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BuzzLimit(Vec<Budget>);

impl BuzzLimit {
    pub const MAX_BUDGETS: usize = 16;
    /// Bound on the JSON text accepted from a form, so a hostile field cannot cost much.
    pub const MAX_JSON_LEN: usize = 16 * 1024;
    /// The consent page default: 5000 per day.
    pub const DEFAULT_DAILY_LIMIT: u64 = 5000;

    /// No cap.
    pub fn unlimited() -> BuzzLimit {
        BuzzLimit(Vec::new())
    }

    /// Budgets that were each validated already (a combination of two stored limits, which
    /// may hold more than 16 together).
    pub(crate) fn from_validated(budgets: Vec<Budget>) -> BuzzLimit {
        BuzzLimit(budgets)
    }

    /// Validates every budget and the count (at most 16).
    pub fn new(budgets: Vec<Budget>) -> Result<BuzzLimit, Error> {
        let limit = BuzzLimit(budgets);
        limit.validate()?;
        Ok(limit)
    }

    pub fn validate(&self) -> Result<(), Error> {
        if self.0.len() > Self::MAX_BUDGETS {
            return Err(Error::invalid_request("at most 16 budgets are allowed"));
        }
        self.0.iter().try_for_each(Budget::validate)
    }

    pub fn is_unlimited(&self) -> bool {
        self.0.is_empty()
    }

    pub fn budgets(&self) -> &[Budget] {
        &self.0
    }

    /// The consent page's default: one sliding budget of 5000 per day.
    pub fn consent_default() -> BuzzLimit {
        BuzzLimit(vec![Budget::Sliding {
            limit: Self::DEFAULT_DAILY_LIMIT,
            window: Window::Day,
            unit: 1,
            currencies: None,
        }])
    }

    /// The consent page's "per 24 hours / 7 days / 30 days" choice:
    /// `{type:"sliding", limit, window:"day", unit: days}` with `days` ∈ {1, 7, 30}.
    pub fn per_period(limit: u64, days: u32) -> Result<BuzzLimit, Error> {
        if !matches!(days, 1 | 7 | 30) {
            return Err(Error::invalid_request(
                "buzz limit period must be 1, 7 or 30 days",
            ));
        }
        BuzzLimit::new(vec![Budget::Sliding {
            limit,
            window: Window::Day,
            unit: days,
            currencies: None,
        }])
    }

    /// The reverse of [`BuzzLimit::per_period`] for prefilling the consent page: `(limit, days)`
    /// when this is a single all-currency sliding budget of 1, 7 or 30 days (also recognising
    /// `week × 1` and `month × 1`, as Civitai's UI does); `None` for anything custom.
    pub fn as_period(&self) -> Option<(u64, u32)> {
        let [
            Budget::Sliding {
                limit,
                window,
                unit,
                currencies: None,
            },
        ] = self.0.as_slice()
        else {
            return None;
        };
        let days = match (window, unit) {
            (Window::Day, d @ (1 | 7 | 30)) => *d,
            (Window::Week, 1) => 7,
            (Window::Month, 1) => 30,
            _ => return None,
        };
        Some((*limit, days))
    }

    /// Parses stored or submitted JSON: `null` or `[]` is no cap. Invalid JSON is
    /// `invalid_request "buzz_limit is not valid JSON"`; anything that is JSON but not a valid
    /// list of budgets is `invalid_request "buzz_limit failed validation"` (research (e) wording).
    pub fn parse_json(json: &str) -> Result<BuzzLimit, Error> {
        if json.len() > Self::MAX_JSON_LEN {
            return Err(failed_validation());
        }
        // Parse the syntax first so the two failures get their two distinct messages.
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|_| Error::invalid_request("buzz_limit is not valid JSON"))?;
        let budgets: Option<Vec<Budget>> =
            serde_json::from_value(value).map_err(|_| failed_validation())?;
        BuzzLimit::new(budgets.unwrap_or_default()).map_err(|_| failed_validation())
    }

    /// The consent form's `buzz_limit` field. Absent → `Ok(None)` (keep what is stored); blank,
    /// `null` or `[]` → `Ok(Some(no cap))`; otherwise [`BuzzLimit::parse_json`].
    pub fn parse_form_field(field: Option<&str>) -> Result<Option<BuzzLimit>, Error> {
        match field {
            None => Ok(None),
            Some(text) if text.trim().is_empty() => Ok(Some(BuzzLimit::unlimited())),
            Some(text) => BuzzLimit::parse_json(text).map(Some),
        }
    }
}

/// The cap controls of the consent page and of Connected Apps' "Edit limit" (SPEC 15): the
/// checkbox "Limit Buzz spending", the number "Buzz limit" and the select "Period" (1, 7 or 30
/// days), as the form sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapForm {
    pub limited: bool,
    pub amount: Option<String>,
    pub period_days: Option<String>,
}

impl CapForm {
    /// No cap when unticked; otherwise [`BuzzLimit::per_period`] of the amount (a whole
    /// number, at least 1; thousands separators allowed) over the period (1 day when absent).
    pub fn to_limit(&self) -> Result<BuzzLimit, Error> {
        if !self.limited {
            return Ok(BuzzLimit::unlimited());
        }
        let amount: String = self
            .amount
            .as_deref()
            .unwrap_or("")
            .chars()
            .filter(|c| !matches!(c, ',' | '_' | ' '))
            .collect();
        let amount = amount
            .parse::<u64>()
            .ok()
            .filter(|a| *a >= 1)
            .ok_or_else(|| {
                Error::invalid_request("Buzz limit must be a whole number, 1 or more")
            })?;
        let days = match self.period_days.as_deref().map(str::trim) {
            None | Some("") => 1,
            Some(d) => d
                .parse::<u32>()
                .map_err(|_| Error::invalid_request("buzz limit period must be 1, 7 or 30 days"))?,
        };
        BuzzLimit::per_period(amount, days)
    }
}

fn failed_validation() -> Error {
    Error::invalid_request("buzz_limit failed validation")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn the_cap_form_reads_as_a_period_limit() {
        let form = |limited, amount: &str, days: &str| CapForm {
            limited,
            amount: Some(amount.into()),
            period_days: Some(days.into()),
        };
        assert_eq!(
            form(true, "2,500", "7").to_limit().unwrap().as_period(),
            Some((2500, 7))
        );
        assert!(form(false, "2500", "7").to_limit().unwrap().is_unlimited());
        for (amount, days) in [
            ("0", "1"),
            ("-5", "1"),
            ("abc", "1"),
            ("", "1"),
            ("10", "3"),
            ("10", "x"),
        ] {
            assert!(
                matches!(
                    form(true, amount, days).to_limit(),
                    Err(Error::InvalidRequest(_))
                ),
                "{amount} per {days}"
            );
        }
        let no_period = CapForm {
            limited: true,
            amount: Some("10".into()),
            period_days: None,
        };
        assert_eq!(no_period.to_limit().unwrap().as_period(), Some((10, 1)));
    }

    fn sliding(limit: u64, window: Window, unit: u32) -> Budget {
        Budget::Sliding {
            limit,
            window,
            unit,
            currencies: None,
        }
    }

    fn rollover(limit: u64, cron: &str) -> Budget {
        Budget::Rollover {
            limit,
            cron: CronSchedule::parse(cron).unwrap(),
            currencies: None,
        }
    }

    #[test]
    fn currency_is_normalised_to_lowercase() {
        assert_eq!(Currency::parse("Blue").unwrap().as_str(), "blue");
        assert_eq!(Currency::parse("green_2-x").unwrap().as_str(), "green_2-x");
        assert_eq!(Currency::default(), Currency::yellow());
        assert_eq!(Currency::yellow().to_string(), "yellow");
        let c: Currency = serde_json::from_str("\"Blue\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"blue\"");
    }

    #[test]
    fn currency_rejects_empty_long_and_odd_characters() {
        for bad in ["", "a b", "yellow!", "é", &"a".repeat(33)] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Currency::parse(&"a".repeat(32)).is_ok());
        assert!(serde_json::from_str::<Currency>("\"\"").is_err());
    }

    #[test]
    fn window_durations_take_a_month_as_30_days() {
        assert_eq!(Window::Second.duration(), Duration::seconds(1));
        assert_eq!(Window::Week.duration(), Duration::days(7));
        assert_eq!(Window::Month.duration(), Duration::days(30));
        assert_eq!(Window::Month.max_unit(), 122);
        assert_eq!(serde_json::to_string(&Window::Month).unwrap(), "\"month\"");
    }

    #[test]
    fn budgets_serialise_in_the_research_shapes() {
        assert_eq!(
            serde_json::to_value(sliding(5000, Window::Day, 1)).unwrap(),
            json!({"type": "sliding", "limit": 5000, "window": "day", "unit": 1})
        );
        assert_eq!(
            serde_json::to_value(Budget::Absolute {
                limit: 7,
                currencies: Some(vec![Currency::yellow()])
            })
            .unwrap(),
            json!({"type": "absolute", "limit": 7, "currencies": ["yellow"]})
        );
        assert_eq!(
            serde_json::to_value(rollover(100, "0 0 1 * *")).unwrap(),
            json!({"type": "rollover", "limit": 100, "cron": "0 0 1 * *"})
        );
    }

    #[test]
    fn budgets_deserialise_from_the_research_shapes() {
        let limit = BuzzLimit::parse_json(
            r#"[{"type":"absolute","limit":10},
                {"type":"sliding","limit":5,"window":"hour","unit":2,"currencies":["Blue"]},
                {"type":"rollover","limit":3,"cron":"0 0 * * MON"}]"#,
        )
        .unwrap();
        assert_eq!(limit.budgets().len(), 3);
        assert_eq!(
            limit.budgets()[1],
            Budget::Sliding {
                limit: 5,
                window: Window::Hour,
                unit: 2,
                currencies: Some(vec![Currency::parse("blue").unwrap()])
            }
        );
        let round: BuzzLimit =
            serde_json::from_str(&serde_json::to_string(&limit).unwrap()).unwrap();
        assert_eq!(round, limit);
    }

    #[test]
    fn validate_rejects_what_serde_cannot() {
        let bad = [
            sliding(0, Window::Day, 1),
            sliding(1, Window::Day, 0),
            sliding(1, Window::Month, 123),
            sliding(1, Window::Day, 3661),
            Budget::Absolute {
                limit: 1,
                currencies: Some(vec![]),
            },
            rollover(1, "0 0 30 2 *"),
        ];
        for b in bad {
            assert_eq!(b.validate().unwrap_err().code(), "invalid_request", "{b:?}");
        }
        assert!(sliding(1, Window::Day, 3660).validate().is_ok());
        assert!(
            sliding(1, Window::Second, Window::Second.max_unit())
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn budget_without_currencies_applies_to_every_currency() {
        let blue = Currency::parse("blue").unwrap();
        assert!(sliding(1, Window::Day, 1).applies_to(&blue));
        let yellow_only = Budget::Absolute {
            limit: 1,
            currencies: Some(vec![Currency::yellow()]),
        };
        assert!(yellow_only.applies_to(&Currency::yellow()));
        assert!(!yellow_only.applies_to(&blue));
    }

    #[test]
    fn sliding_day_budget_counts_only_the_last_24_hours() {
        let now = datetime!(2024-05-17 13:45:12 UTC);
        assert_eq!(
            sliding(1, Window::Day, 1).window_start(now),
            Some(datetime!(2024-05-16 13:45:12 UTC))
        );
        assert_eq!(
            sliding(1, Window::Month, 1).window_start(now),
            Some(datetime!(2024-04-17 13:45:12 UTC))
        );
    }

    #[test]
    fn absolute_budget_counts_all_time() {
        let b = Budget::Absolute {
            limit: 1,
            currencies: None,
        };
        assert_eq!(b.window_start(datetime!(2024-05-17 00:00 UTC)), None);
    }

    #[test]
    fn rollover_budget_counts_since_the_last_cron_fire() {
        let now = datetime!(2024-05-17 13:45 UTC);
        assert_eq!(
            rollover(1, "0 0 1 * *").window_start(now),
            Some(datetime!(2024-05-01 00:00 UTC))
        );
        // Never fired within the lookback: the last five years count, not all time.
        let never = rollover(1, "0 0 30 2 *");
        assert_eq!(never.window_start(now), Some(now - CronSchedule::LOOKBACK));
    }

    #[test]
    fn window_labels_read_like_the_consent_page() {
        assert_eq!(sliding(1, Window::Day, 1).window_label(), "per 24 hours");
        assert_eq!(sliding(1, Window::Day, 7).window_label(), "per 7 days");
        assert_eq!(sliding(1, Window::Hour, 1).window_label(), "per hour");
        assert_eq!(sliding(1, Window::Week, 2).window_label(), "per 2 weeks");
        assert_eq!(
            Budget::Absolute {
                limit: 1,
                currencies: None
            }
            .window_label(),
            "in total"
        );
        assert!(rollover(1, "@monthly").window_label().contains("@monthly"));
    }

    #[test]
    fn form_field_absent_keeps_blank_or_null_clears() {
        assert_eq!(BuzzLimit::parse_form_field(None), Ok(None));
        for clear in ["", "   ", "null", "[]", " [ ] "] {
            let parsed = BuzzLimit::parse_form_field(Some(clear)).unwrap().unwrap();
            assert!(parsed.is_unlimited(), "{clear:?}");
        }
        let one = BuzzLimit::parse_form_field(Some(
            r#"[{"type":"sliding","limit":5000,"window":"day","unit":1}]"#,
        ))
        .unwrap();
        assert_eq!(one, Some(BuzzLimit::consent_default()));
    }

    #[test]
    fn form_field_errors_use_the_civitai_wording() {
        let not_json = Error::invalid_request("buzz_limit is not valid JSON");
        let failed = Error::invalid_request("buzz_limit failed validation");
        assert_eq!(BuzzLimit::parse_form_field(Some("[{")), Err(not_json));
        for bad in [
            r#"{"type":"absolute","limit":1}"#,
            r#"[{"type":"weekly","limit":1}]"#,
            r#"[{"type":"absolute","limit":-1}]"#,
            r#"[{"type":"absolute","limit":0}]"#,
            r#"[{"type":"sliding","limit":1,"window":"year","unit":1}]"#,
            r#"[{"type":"sliding","limit":1,"window":"day","unit":0}]"#,
            r#"[{"type":"rollover","limit":1,"cron":"61 * * * *"}]"#,
            r#"[{"type":"absolute","limit":1,"currencies":[]}]"#,
            r#"[{"type":"absolute","limit":1,"currencies":["no way"]}]"#,
        ] {
            assert_eq!(
                BuzzLimit::parse_form_field(Some(bad)),
                Err(failed.clone()),
                "{bad}"
            );
        }
    }

    #[test]
    fn at_most_16_budgets() {
        let budget = r#"{"type":"absolute","limit":1}"#;
        let list = |n: usize| format!("[{}]", vec![budget; n].join(","));
        assert_eq!(
            BuzzLimit::parse_json(&list(16)).unwrap().budgets().len(),
            16
        );
        assert!(BuzzLimit::parse_json(&list(17)).is_err());
        assert!(BuzzLimit::parse_json(&" ".repeat(BuzzLimit::MAX_JSON_LEN + 1)).is_err());
    }

    #[test]
    fn consent_periods_are_1_7_or_30_days() {
        assert_eq!(
            BuzzLimit::per_period(5000, 1).unwrap(),
            BuzzLimit::consent_default()
        );
        assert_eq!(
            BuzzLimit::per_period(200, 30).unwrap().budgets(),
            &[sliding(200, Window::Day, 30)]
        );
        assert!(BuzzLimit::per_period(200, 2).is_err());
        assert!(BuzzLimit::per_period(0, 7).is_err());
        assert_eq!(BuzzLimit::consent_default().as_period(), Some((5000, 1)));
        assert_eq!(
            BuzzLimit::new(vec![sliding(9, Window::Week, 1)])
                .unwrap()
                .as_period(),
            Some((9, 7))
        );
        assert_eq!(
            BuzzLimit::new(vec![sliding(9, Window::Hour, 1)])
                .unwrap()
                .as_period(),
            None
        );
        assert_eq!(BuzzLimit::unlimited().as_period(), None);
    }
}
