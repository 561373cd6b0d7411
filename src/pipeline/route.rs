//! What to do with a record whose send or delivery failed (SPEC §3), as one pure decision:
//! from the failure's class, the record's attempt and kind, and the state of the cluster
//! and the pipeline, to an [`Action`]. The worker carries the action out; this file has no
//! side effects, so every rule is a row in the table test below.

use std::time::Duration;

use crate::contract::taxonomy::ErrorClass;

/// Everything the decision depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Situation {
    /// The failure's class.
    pub class: ErrorClass,
    /// Retries already made (0 after the first failure).
    pub attempt: u32,
    /// The configured retry budget (`OMNINODE_DLQ_MAX_RETRIES`), else the class's own.
    pub max_retries: Option<u32>,
    /// The record timed out while no broker was reachable.
    pub cluster_unreachable: bool,
    /// The pipeline is shutting down: no time is left for retries.
    pub shutting_down: bool,
    /// The failed record is itself a dead-letter record.
    pub is_dlq: bool,
    /// Times the record already went to the spool and came back failing, while the cluster
    /// answered.
    pub round_trips: u32,
    /// A uniform sample in `0.0..=1.0` for the full-jitter backoff.
    pub jitter: f64,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send again after the delay.
    Retry { after: Duration },
    /// Dead-letter to `<topic>.dlq`.
    DeadLetter,
    /// Keep on disk for a later replay.
    Spool,
    /// Count and never re-send (re-sending could duplicate).
    Skip,
}

/// Spool round trips after which a record that keeps failing while the cluster answers
/// (`UNKNOWN_SERVER_ERROR` and other repeat offenders) is dead-lettered instead.
pub(crate) const MAX_ROUND_TRIPS: u32 = 3;

/// Decides what happens to a failed record.
pub(crate) fn route(s: &Situation) -> Action {
    if s.is_dlq {
        // The dead-letter topic is unreachable, or refuses the record (an expired
        // credential, an ACL, a topic never created): keep it on disk until it can be
        // written; dropping it would lose the event.
        return Action::Spool;
    }
    match s.class {
        ErrorClass::RetryableTransient | ErrorClass::RetryableDependency => {
            let backoff = s.class.default_backoff();
            let budget = s.max_retries.unwrap_or(backoff.max_retries);
            if s.shutting_down || s.cluster_unreachable {
                Action::Spool
            } else if s.attempt >= budget {
                // Budget spent while the cluster answers: spool, unless the record keeps
                // coming back failing.
                if s.round_trips + 1 >= MAX_ROUND_TRIPS {
                    Action::DeadLetter
                } else {
                    Action::Spool
                }
            } else {
                Action::Retry {
                    after: backoff.delay_at(s.attempt, s.jitter),
                }
            }
        }
        ErrorClass::NonRetryableValidation
        | ErrorClass::NonRetryablePolicy
        | ErrorClass::NonRetryableSecurity => Action::DeadLetter,
        ErrorClass::NonRetryableIdempotency => Action::Skip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    fn live(class: ErrorClass, attempt: u32) -> Situation {
        Situation {
            class,
            attempt,
            max_retries: None,
            cluster_unreachable: false,
            shutting_down: false,
            is_dlq: false,
            round_trips: 0,
            jitter: 1.0,
        }
    }

    fn retry(ms: u64) -> Action {
        Action::Retry {
            after: Duration::from_millis(ms),
        }
    }

    #[test]
    fn table() {
        let unreachable = |s: Situation| Situation {
            cluster_unreachable: true,
            ..s
        };
        let closing = |s: Situation| Situation {
            shutting_down: true,
            ..s
        };
        let dlq = |s: Situation| Situation { is_dlq: true, ..s };
        let budget = |n: u32, s: Situation| Situation {
            max_retries: Some(n),
            ..s
        };
        let trips = |n: u32, s: Situation| Situation {
            round_trips: n,
            ..s
        };
        use Action::{DeadLetter, Skip, Spool};
        #[rustfmt::skip]
        let cases: Vec<(&str, Situation, Action)> = vec![
            // Retryable classes: full-jitter backoff (jitter 1.0 = the ceiling) ...
            ("transient, first", live(RetryableTransient, 0), retry(100)),
            ("transient, 3rd", live(RetryableTransient, 3), retry(800)),
            ("transient, 5th", live(RetryableTransient, 5), retry(3200)),
            ("dependency, first", live(RetryableDependency, 0), retry(500)),
            ("dependency, 2nd", live(RetryableDependency, 2), retry(2000)),
            // ... until the class's budget, then the spool.
            ("transient, spent", live(RetryableTransient, 6), Spool),
            ("dependency, spent", live(RetryableDependency, 3), Spool),
            ("configured budget", budget(1, live(RetryableTransient, 1)), Spool),
            ("configured budget, left", budget(9, live(RetryableDependency, 5)), retry(10_000)),
            ("zero budget", budget(0, live(RetryableTransient, 0)), Spool),
            // librdkafka already retried a timeout while no broker answered.
            ("unreachable", unreachable(live(RetryableDependency, 0)), Spool),
            ("shutting down", closing(live(RetryableTransient, 0)), Spool),
            // Repeat offenders: spooled before while the cluster answered.
            ("2nd round trip", trips(1, live(RetryableDependency, 3)), Spool),
            ("3rd round trip", trips(2, live(RetryableDependency, 3)), DeadLetter),
            ("3rd, retries left", trips(2, live(RetryableTransient, 0)), retry(100)),
            ("3rd, unreachable", trips(2, unreachable(live(RetryableDependency, 3))), Spool),
            ("3rd, closing", trips(2, closing(live(RetryableTransient, 6))), Spool),
            // Non-retryable classes.
            ("validation", live(NonRetryableValidation, 0), DeadLetter),
            ("policy", live(NonRetryablePolicy, 0), DeadLetter),
            ("security", live(NonRetryableSecurity, 0), DeadLetter),
            ("security, closing", closing(live(NonRetryableSecurity, 0)), DeadLetter),
            ("idempotency", live(NonRetryableIdempotency, 0), Skip),
            // A dead-letter record that fails is kept, whatever the reason.
            ("dlq, transient", dlq(live(RetryableTransient, 0)), Spool),
            ("dlq, dependency", dlq(live(RetryableDependency, 0)), Spool),
            ("dlq, policy", dlq(live(NonRetryablePolicy, 0)), Spool),
            ("dlq, security", dlq(live(NonRetryableSecurity, 0)), Spool),
            ("dlq, validation", dlq(live(NonRetryableValidation, 0)), Spool),
            ("dlq, idempotency", dlq(live(NonRetryableIdempotency, 0)), Spool),
            ("dlq, many trips", trips(9, dlq(live(RetryableDependency, 3))), Spool),
        ];
        for (name, situation, expected) in cases {
            assert_eq!(route(&situation), expected, "{name}: {situation:?}");
        }
    }

    #[test]
    fn retry_delay_is_full_jitter_within_the_ceiling() {
        for attempt in 0..6 {
            let ceiling = RetryableTransient.default_backoff().ceiling(attempt);
            let at = |jitter| match route(&Situation {
                jitter,
                ..live(RetryableTransient, attempt)
            }) {
                Action::Retry { after } => after,
                other => panic!("attempt {attempt}: {other:?}"),
            };
            assert_eq!(at(0.0), Duration::ZERO);
            assert!(at(0.5) <= ceiling && at(0.5) >= ceiling / 3);
            assert_eq!(at(1.0), ceiling);
        }
    }
}
