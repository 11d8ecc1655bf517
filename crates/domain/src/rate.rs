//! Fixed-window rate limiting (SPEC 10), as one pure rule: adapters only count hits per
//! (key, window) through [`crate::ports::RateLimiter`]; whether a request may pass and how long
//! to wait is decided here, the same way for every adapter.

use time::OffsetDateTime;

/// One fixed window: `[start, start + secs)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateWindow {
    pub start: i64,
    pub secs: u64,
}

impl RateWindow {
    /// The window of `secs` seconds (at least 1) that contains `now`. Windows are aligned to
    /// the Unix epoch, so every node computes the same window for the same instant.
    pub fn containing(now: OffsetDateTime, secs: u64) -> RateWindow {
        let secs = secs.clamp(1, i64::MAX as u64 / 4);
        let len = secs as i64;
        RateWindow {
            start: now.unix_timestamp().div_euclid(len) * len,
            secs,
        }
    }

    /// The first second after the window.
    pub fn end(&self) -> i64 {
        self.start.saturating_add(self.secs as i64)
    }

    /// Whole seconds from `now` until the window ends, at least 1.
    pub fn seconds_left(&self, now: OffsetDateTime) -> u64 {
        u64::try_from(self.end().saturating_sub(now.unix_timestamp())).map_or(1, |s| s.max(1))
    }
}

/// A decision of the rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub remaining: u32,
    /// Seconds until a request would be allowed again (0 when allowed).
    pub retry_after: u64,
}

/// The decision after a hit brought the window's count to `count`: allowed while
/// `count ≤ limit`.
pub fn decide(count: u64, limit: u32, window: RateWindow, now: OffsetDateTime) -> RateDecision {
    let allowed = count <= u64::from(limit);
    RateDecision {
        allowed,
        remaining: u32::try_from(u64::from(limit).saturating_sub(count)).unwrap_or(0),
        retry_after: if allowed { 0 } else { window.seconds_left(now) },
    }
}

/// The decision for a request that is only counted when it fails (a wrong password, a bad
/// client secret): it is refused up front once `count` failures fill the window.
pub fn decide_before(
    count: u64,
    limit: u32,
    window: RateWindow,
    now: OffsetDateTime,
) -> RateDecision {
    decide(count.saturating_add(1), limit, window, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2026-01-01 00:00:30 UTC);

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let w = RateWindow::containing(T, 60);
        assert_eq!(w.start, datetime!(2026-01-01 00:00:00 UTC).unix_timestamp());
        assert_eq!(w.end() - w.start, 60);
        assert_eq!(w.seconds_left(T), 30);
        assert_eq!(RateWindow::containing(T, 0).secs, 1);
    }

    #[test]
    fn the_limit_th_hit_passes_and_the_next_waits_for_the_window() {
        let w = RateWindow::containing(T, 60);
        let ok = decide(3, 3, w, T);
        assert!(ok.allowed);
        assert_eq!((ok.remaining, ok.retry_after), (0, 0));
        let no = decide(4, 3, w, T);
        assert!(!no.allowed);
        assert_eq!(no.retry_after, 30);
    }

    #[test]
    fn failures_block_once_the_window_is_full() {
        let w = RateWindow::containing(T, 60);
        assert!(decide_before(2, 3, w, T).allowed);
        assert!(!decide_before(3, 3, w, T).allowed);
    }

    #[test]
    fn retry_after_is_never_zero() {
        let w = RateWindow::containing(datetime!(2026-01-01 00:00:59.9 UTC), 60);
        assert_eq!(
            decide(9, 1, w, datetime!(2026-01-01 00:00:59.9 UTC)).retry_after,
            1
        );
    }
}
