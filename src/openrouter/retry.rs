//! When to try a call again, and for how long: one deadline for all of a
//! run's calls (OPENROUTER_TIMEOUT), a timeout for each attempt within it,
//! and exponential backoff with jitter between attempts, or the server's
//! `Retry-After` when it gives one.

use std::time::{Duration, Instant};

/// One attempt never takes longer than this, even with a long deadline, so
/// that a stalled connection leaves time to try again.
const MAX_ATTEMPT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The run's budget for the API.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The timeout of the next attempt; `None` once the budget is spent.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        let left = self.remaining();
        (!left.is_zero()).then(|| left.min(MAX_ATTEMPT))
    }

    /// Whether a wait of `wait` still leaves time for an attempt.
    pub fn allows_wait(&self, wait: Duration) -> bool {
        wait < self.remaining()
    }
}

/// How long to wait before attempt `attempt` (1 for the first retry):
/// exponential, capped, with "equal jitter" (half fixed, half random) so
/// that replicas that failed together do not retry together. The server's
/// `Retry-After` wins when it is given.
pub fn backoff(attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    if let Some(wait) = retry_after {
        return wait;
    }
    let exponent = attempt.saturating_sub(1).min(16);
    let base = FIRST_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    let jitter = jitter.clamp(0.0, 1.0);
    base / 2 + base.mul_f64(jitter / 2.0)
}

/// `Retry-After` in delta-seconds, as OpenRouter sends it. The HTTP-date
/// form is not used by OpenRouter; it falls back to the backoff.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A number in [0, 1) from the OS random source, for the jitter; 0.5 when
/// there is none (the backoff still grows).
pub fn jitter() -> f64 {
    use rand::TryRng;
    let mut bytes = [0u8; 4];
    match rand::rngs::SysRng.try_fill_bytes(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_keeps_half_of_its_base() {
        assert_eq!(backoff(1, None, 0.0), Duration::from_millis(125));
        assert_eq!(backoff(1, None, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(2, None, 0.0), Duration::from_millis(250));
        assert_eq!(backoff(3, None, 1.0), Duration::from_millis(1000));
        assert_eq!(backoff(30, None, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(30, None, 0.0), MAX_BACKOFF / 2);
    }

    #[test]
    fn retry_after_wins_over_the_backoff() {
        let wait = Some(Duration::from_secs(7));
        assert_eq!(backoff(1, wait, 0.3), Duration::from_secs(7));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn the_deadline_bounds_each_attempt_and_every_wait() {
        let deadline = Deadline::after(Duration::from_secs(3));
        let attempt = deadline.attempt_timeout().unwrap();
        assert!(attempt <= Duration::from_secs(3) && attempt > Duration::from_secs(2));
        assert!(deadline.allows_wait(Duration::from_secs(1)));
        assert!(!deadline.allows_wait(Duration::from_secs(3)));
        let long = Deadline::after(Duration::from_secs(600));
        assert_eq!(long.attempt_timeout(), Some(MAX_ATTEMPT));
        let spent = Deadline::after(Duration::ZERO);
        assert_eq!(spent.attempt_timeout(), None);
    }

    #[test]
    fn jitter_is_a_fraction() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
