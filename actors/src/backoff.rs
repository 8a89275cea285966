//! Exponential backoff with jitter for watcher restarts.

use std::time::Duration;

use rand::Rng;

/// Doubles from `initial` up to `max`; each delay is drawn from the upper half of the current step, so
/// many brokers restarting together spread out instead of hitting the API server in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_millis(500), max: Duration::from_secs(60), attempt: 0 }
    }
}

impl Backoff {
    /// Sets the first delay.
    #[must_use]
    pub fn initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// Sets the longest delay.
    #[must_use]
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// The ceiling of the next delay, before jitter.
    #[must_use]
    pub fn ceiling(&self) -> Duration {
        self.initial.saturating_mul(2u32.saturating_pow(self.attempt.min(31))).min(self.max)
    }

    /// The next delay, in `[ceiling / 2, ceiling]`; advances the attempt count.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }

    /// Starts again from `initial` (after a healthy watch).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_and_stop_at_max() {
        let mut b = Backoff::default().initial(Duration::from_secs(1)).max(Duration::from_secs(8));
        let ceilings = [1, 2, 4, 8, 8];
        for secs in ceilings {
            let ceiling = Duration::from_secs(secs);
            let d = b.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} not in [{:?}, {ceiling:?}]", ceiling / 2);
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::default().initial(Duration::from_secs(1));
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }
}
