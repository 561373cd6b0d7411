//! The error taxonomy of SPEC §3: the six classes a delivery failure falls in, their SPEC
//! names (carried by DLQ records) and their retry budgets. Which librdkafka error falls in
//! which class is decided in `kafka::classify`; what the pipeline does about each class
//! in `pipeline::route`.

use std::time::Duration;

/// The six classes of delivery failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// Short-lived: up to 6 retries, full-jitter backoff 100 ms .. 5 s.
    RetryableTransient,
    /// A dependency (broker, leader, replicas) is down: up to 3 retries, backoff
    /// 500 ms .. 10 s, then the spool.
    RetryableDependency,
    /// The record itself is invalid: straight to the DLQ.
    NonRetryableValidation,
    /// Refused by policy (ACLs, broker policy): straight to the DLQ.
    NonRetryablePolicy,
    /// Authentication/authorization of the client: DLQ, and reported as a pipeline error.
    NonRetryableSecurity,
    /// Idempotence/sequence state: never re-sent (it could duplicate), only counted.
    NonRetryableIdempotency,
}

impl ErrorClass {
    /// The SPEC name (`RETRYABLE_TRANSIENT`, ...), used in DLQ records and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RetryableTransient => "RETRYABLE_TRANSIENT",
            ErrorClass::RetryableDependency => "RETRYABLE_DEPENDENCY",
            ErrorClass::NonRetryableValidation => "NON_RETRYABLE_VALIDATION",
            ErrorClass::NonRetryablePolicy => "NON_RETRYABLE_POLICY",
            ErrorClass::NonRetryableSecurity => "NON_RETRYABLE_SECURITY",
            ErrorClass::NonRetryableIdempotency => "NON_RETRYABLE_IDEMPOTENCY",
        }
    }

    /// Whether the class allows application-level retries.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RetryableTransient | ErrorClass::RetryableDependency
        )
    }

    /// The default retry budget and backoff bounds of the class (SPEC §3).
    pub fn default_backoff(self) -> Backoff {
        match self {
            ErrorClass::RetryableTransient => Backoff {
                max_retries: 6,
                base: Duration::from_millis(100),
                cap: Duration::from_secs(5),
            },
            ErrorClass::RetryableDependency => Backoff {
                max_retries: 3,
                base: Duration::from_millis(500),
                cap: Duration::from_secs(10),
            },
            _ => Backoff {
                max_retries: 0,
                base: Duration::ZERO,
                cap: Duration::ZERO,
            },
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Retry budget and full-jitter exponential backoff bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Retries allowed after the first attempt.
    pub max_retries: u32,
    /// First backoff ceiling.
    pub base: Duration,
    /// Largest backoff ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// The ceiling for retry number `attempt` (0-based): `min(cap, base * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A full-jitter delay for retry number `attempt`: uniform in `0..=ceiling(attempt)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_at(attempt, fastrand::f64())
    }

    /// The delay for retry number `attempt` at `jitter` (`0.0..=1.0`) of its ceiling.
    pub fn delay_at(&self, attempt: u32, jitter: f64) -> Duration {
        self.ceiling(attempt).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Why a delivery failed, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The class.
    pub class: ErrorClass,
    /// The librdkafka error name (`MessageSizeTooLarge`, ...).
    pub code: String,
    /// The producer hit a fatal error and must be rebuilt before anything is re-sent.
    pub rebuild_producer: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    #[test]
    fn backoff_is_full_jitter_within_bounds() {
        let b = RetryableTransient.default_backoff();
        assert_eq!(b.max_retries, 6);
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(10), Duration::from_secs(5));
        for attempt in 0..8 {
            for _ in 0..50 {
                assert!(b.delay(attempt) <= b.ceiling(attempt));
            }
        }
        let d = RetryableDependency.default_backoff();
        assert_eq!(
            (d.max_retries, d.base, d.cap),
            (3, Duration::from_millis(500), Duration::from_secs(10))
        );
        assert_eq!(NonRetryablePolicy.default_backoff().max_retries, 0);
    }
}
