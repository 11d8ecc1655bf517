//! The clock and randomness ports, with their production and test implementations. These two
//! are the only impure leaves of the domain crate (the OS clock and the OS random source);
//! composition roots choose them, tests use [`ManualClock`] and [`SeededRandom`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use time::{Duration, OffsetDateTime};

/// Where "now" comes from. Every TTL and window is computed from it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;
}

/// Where secret bytes come from (tokens, codes, secrets, ids, salts).
pub trait Random: Send + Sync + std::fmt::Debug {
    fn fill(&self, buf: &mut [u8]);
}

/// The wall clock (UTC).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // The OS source failing is unrecoverable for an authorization server: refusing to
        // mint tokens from weak bytes is the only safe answer.
        getrandom::getrandom(buf).expect("the operating system's random source failed");
    }
}

/// A clock that only moves when told to. For tests: "at t+3600 the token is expired".
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock(Mutex::new(start))
    }
    /// 2026-01-01T00:00:00Z, a fixed point for tests.
    pub fn at_epoch() -> Self {
        Self::new(Self::at_epoch_now())
    }
    /// The instant [`ManualClock::at_epoch`] starts at.
    pub fn at_epoch_now() -> OffsetDateTime {
        time::macros::datetime!(2026-01-01 00:00:00 UTC)
    }
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }
    pub fn set(&self, to: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Deterministic, non-cryptographic bytes (splitmix64) for reproducible tests. Never use it
/// to mint real credentials.
#[derive(Debug)]
pub struct SeededRandom(AtomicU64);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom(AtomicU64::new(seed))
    }
}

impl Random for SeededRandom {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut z = self
                .0
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
                .wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_epoch();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.advance(Duration::seconds(3600));
        assert_eq!(c.now() - t0, Duration::seconds(3600));
    }

    #[test]
    fn seeded_random_is_reproducible_and_varied() {
        let (a, b) = (SeededRandom::new(1), SeededRandom::new(1));
        let (mut x, mut y) = ([0u8; 20], [0u8; 20]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        let mut z = [0u8; 20];
        a.fill(&mut z);
        assert_ne!(x, z);
    }

    #[test]
    fn os_random_fills_the_buffer() {
        let mut x = [0u8; 32];
        OsRandom.fill(&mut x);
        assert_ne!(x, [0u8; 32]);
    }
}
