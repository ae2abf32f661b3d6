//! A token bucket per project: `rate` spans per second on average, `burst` at once.
//!
//! A request is admitted when the bucket holds a token for each of its spans. A request larger
//! than the burst is admitted when the bucket is full, and puts it in debt, so that it passes
//! rather than never while the average rate still holds. A refused request learns how long until
//! it would pass (`Retry-After`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes `count` tokens at `now`, or says how long to wait before trying again.
    pub fn try_take_at(&self, count: usize, now: Instant) -> Result<(), Duration> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let (tokens, last) = *state;
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        let tokens = (tokens + elapsed * self.rate).min(self.burst);
        let needed = (count as f64).min(self.burst);
        if tokens < needed {
            *state = (tokens, now);
            let wait = (needed - tokens) / self.rate;
            return Err(Duration::from_secs_f64(wait.min(3600.0)));
        }
        *state = (tokens - count as f64, now);
        Ok(())
    }

    pub fn try_take(&self, count: usize) -> Result<(), Duration> {
        self.try_take_at(count, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_burst_then_refuses_until_refilled() {
        let bucket = TokenBucket::new(100.0, 100.0);
        let start = Instant::now();
        let at = |millis| start + Duration::from_millis(millis);
        assert!(bucket.try_take_at(60, start).is_ok());
        let wait = bucket.try_take_at(60, start).unwrap_err();
        assert!(wait > at(190) - start && wait < at(210) - start, "{wait:?}");
        assert!(bucket.try_take_at(60, at(150)).is_err());
        assert!(bucket.try_take_at(60, at(250)).is_ok());
    }

    #[test]
    fn a_request_larger_than_the_burst_passes_on_a_full_bucket() {
        let bucket = TokenBucket::new(10.0, 10.0);
        let start = Instant::now();
        assert!(bucket.try_take_at(1000, start).is_ok());
        assert!(
            bucket
                .try_take_at(1, start + Duration::from_secs(50))
                .is_err()
        );
        assert!(
            bucket
                .try_take_at(1, start + Duration::from_secs(100))
                .is_ok()
        );
    }
}
