//! The one retry policy of both read paths: a transient failure is retried up to
//! `token_sync.max_retries` times, waiting `token_sync.retry_delay` doubled for each further
//! retry, with jitter (so that streams cut together do not come back together), never more
//! than [`MAX_RETRY_DELAY`]; a delay BigQuery asks for (gRPC's RetryInfo) is waited as asked.

use std::time::Duration;

use crate::error::{SyncError, SyncResult};
use crate::settings::Settings;

/// The longest wait between two retries.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(32);

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    max_retries: u32,
    first_delay: Duration,
}

impl RetryPolicy {
    pub fn new(settings: &Settings) -> Self {
        Self {
            max_retries: settings.max_retries,
            first_delay: settings.retry_delay,
        }
    }

    /// The wait before retry number `retries + 1`: `asked`, where BigQuery said how long,
    /// else the doubled delay with jitter (between half of it and all of it).
    pub fn delay(&self, retries: u32, asked: Option<Duration>) -> Duration {
        let delay = asked.unwrap_or_else(|| {
            self.first_delay
                .saturating_mul(1 << retries.min(16))
                .min(MAX_RETRY_DELAY)
                .mul_f64(rand::random_range(0.5..=1.0))
        });
        delay.min(MAX_RETRY_DELAY)
    }

    /// Waits before retry number `retries + 1` of a transient `error` and returns the new
    /// count; else the error, with how many retries came before it in its detail.
    pub async fn pause(
        &self,
        error: SyncError,
        retries: u32,
        asked: Option<Duration>,
    ) -> SyncResult<u32> {
        if error.transient && retries < self.max_retries {
            tokio::time::sleep(self.delay(retries, asked)).await;
            return Ok(retries + 1);
        }
        if retries == 0 {
            return Err(error);
        }
        let detail = match error.detail.as_deref() {
            Some(detail) => format!("{detail}; gave up after {retries} retries"),
            None => format!("gave up after {retries} retries"),
        };
        Err(error.with_detail(detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(first_delay: Duration) -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            first_delay,
        }
    }

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let policy = policy(Duration::from_secs(1));
        for retries in 0..6 {
            let full = Duration::from_secs(1 << retries).min(MAX_RETRY_DELAY);
            let delays: Vec<_> = (0..200).map(|_| policy.delay(retries, None)).collect();
            assert!(
                delays.iter().all(|d| *d >= full / 2 && *d <= full),
                "{delays:?}"
            );
            assert!(
                delays.iter().any(|d| *d != delays[0]),
                "jittered: {delays:?}"
            );
        }
        assert!(policy.delay(40, None) <= MAX_RETRY_DELAY);
    }

    #[test]
    fn a_delay_bigquery_asks_for_is_waited_as_asked_within_the_cap() {
        let policy = policy(Duration::from_millis(10));
        let asked = Duration::from_millis(400);
        assert_eq!(policy.delay(0, Some(asked)), asked);
        assert_eq!(policy.delay(2, Some(asked)), asked);
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(600))),
            MAX_RETRY_DELAY
        );
    }

    #[test]
    fn transient_errors_are_retried_up_to_the_limit_then_say_how_often() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime for the test");
        let policy = policy(Duration::ZERO);
        let transient = || SyncError::remote("overloaded", "later").transient();
        let mut retries = 0;
        let given_up = loop {
            match runtime.block_on(policy.pause(transient(), retries, None)) {
                Ok(count) => retries = count,
                Err(error) => break error,
            }
        };
        assert_eq!(retries, 3);
        assert_eq!(given_up.detail.as_deref(), Some("gave up after 3 retries"));

        let permanent = SyncError::remote("no such table", "check it");
        let error = runtime
            .block_on(policy.pause(permanent, 0, None))
            .expect_err("not transient");
        assert_eq!(
            (error.message.as_str(), error.detail),
            ("no such table", None)
        );
    }
}
