//! Diagnostics: what goes wrong in the pipeline, said where an operator sees it.
//!
//! A *condition* (no broker answers, TLS or authentication fails, a topic is missing, events
//! wait in the spool, the spool is full) is said once when it starts, at WARN, and once when
//! it clears, at INFO; while it lasts it is listed in [`Health::problems`](crate::Health)
//! with its message and age. A *notice* (an event dead-lettered, librdkafka's own warnings
//! and errors) is said at most once per [`NOTICE_EVERY`] for each kind, with the count of
//! the ones held back since. Every message passes the pipeline's sanitizer first.
//!
//! Messages go to the `tracing` target [`TARGET`] (which the layer itself never captures,
//! so they cannot feed back into Kafka) when the installed subscriber wants that target at
//! WARN, and to stderr otherwise, so that a service whose only layer is this one still sees
//! them.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::Level;

use crate::sanitize::Sanitizer;

/// The `tracing` target of the pipeline's own diagnostics.
pub const TARGET: &str = "tracing_omninode::diagnostics";

/// The shortest interval between two messages of one notice kind.
pub const NOTICE_EVERY: Duration = Duration::from_secs(10);

/// A condition of the pipeline an operator should know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Condition {
    /// No broker answers: connection refused, host not resolved, all brokers down.
    BrokerUnreachable,
    /// The cluster refused the client's credentials (SASL).
    AuthenticationFailed,
    /// The TLS handshake failed: unknown CA, expired or mismatched certificate.
    TlsFailed,
    /// A topic the pipeline produces to does not exist (subject: the topic).
    TopicMissing,
    /// Events have waited longer than `degraded_after` without any acknowledgement from
    /// the broker.
    Stalled,
    /// Events wait in the local spool until the broker takes them.
    Spooling,
    /// The spool is full: events that needed it were dropped.
    SpoolFull,
}

impl Condition {
    /// Whether the condition alone makes the pipeline degraded: events cannot get through
    /// it without someone acting (credentials, certificates) or are waiting on disk.
    pub fn degrades(self) -> bool {
        matches!(
            self,
            Condition::AuthenticationFailed
                | Condition::TlsFailed
                | Condition::Stalled
                | Condition::Spooling
                | Condition::SpoolFull
        )
    }
}

/// A condition going on now, as [`Health`](crate::Health) lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Problem {
    /// What is wrong.
    pub condition: Condition,
    /// What it concerns (a topic), or empty.
    pub subject: String,
    /// The message said when it started (sanitized).
    pub message: String,
    /// How long it has lasted, in milliseconds.
    pub for_ms: u64,
}

#[derive(Debug)]
struct Active {
    since: Instant,
    message: String,
}

#[derive(Debug)]
struct Notice {
    last: Instant,
    held_back: u64,
}

/// The pipeline's diagnostics: its active conditions and the rate of its notices.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    service: String,
    sanitizer: Sanitizer,
    /// Any condition is active: the hot path of a delivery clears nothing otherwise.
    any: AtomicBool,
    active: Mutex<BTreeMap<(Condition, String), Active>>,
    notices: Mutex<HashMap<String, Notice>>,
}

impl Diagnostics {
    /// The diagnostics of a pipeline (or tool) with this configuration.
    pub fn of(config: &crate::config::Config) -> Self {
        Self::new(&config.service_name, config.sanitizer.clone())
    }

    pub fn new(service: &str, sanitizer: Sanitizer) -> Self {
        Diagnostics {
            service: service.to_owned(),
            sanitizer,
            any: AtomicBool::new(false),
            active: Mutex::new(BTreeMap::new()),
            notices: Mutex::new(HashMap::new()),
        }
    }

    /// `condition` (about `subject`, or `""`) holds now: said once, when it starts.
    pub fn raise(&self, condition: Condition, subject: &str, message: &str) {
        let message = self.sanitizer.sanitize_str(message).into_owned();
        let mut active = lock(&self.active);
        if active.contains_key(&(condition, subject.to_owned())) {
            return;
        }
        self.say(Level::WARN, &message);
        active.insert(
            (condition, subject.to_owned()),
            Active {
                since: Instant::now(),
                message,
            },
        );
        self.any.store(true, Ordering::Release);
    }

    /// `condition` about `subject` no longer holds (every subject when `None`): said once
    /// for each that was active.
    pub fn clear(&self, condition: Condition, subject: Option<&str>) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut active = lock(&self.active);
        let ended: Vec<_> = active
            .keys()
            .filter(|(c, s)| *c == condition && subject.is_none_or(|want| want == s))
            .cloned()
            .collect();
        for key in ended {
            if let Some(was) = active.remove(&key) {
                let (c, s) = &key;
                let what = if s.is_empty() {
                    format!("{c:?}")
                } else {
                    format!("{c:?} ({s})")
                };
                self.say(
                    Level::INFO,
                    &format!(
                        "cleared after {:.1} s: {what}",
                        was.since.elapsed().as_secs_f64()
                    ),
                );
            }
        }
        self.any.store(!active.is_empty(), Ordering::Release);
    }

    /// A record reached the broker: the connection works, and its topic exists.
    pub fn delivered(&self, topic: &str) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        self.connected();
        self.clear(Condition::TopicMissing, Some(topic));
    }

    /// The cluster answered (a delivery, a metadata request): it is reachable, and TLS and
    /// authentication work.
    pub fn connected(&self) {
        for c in [
            Condition::BrokerUnreachable,
            Condition::TlsFailed,
            Condition::AuthenticationFailed,
        ] {
            self.clear(c, None);
        }
    }

    /// The conditions active now.
    pub fn problems(&self) -> Vec<Problem> {
        if !self.any.load(Ordering::Acquire) {
            return Vec::new();
        }
        lock(&self.active)
            .iter()
            .map(|((condition, subject), a)| Problem {
                condition: *condition,
                subject: subject.clone(),
                message: a.message.clone(),
                for_ms: a.since.elapsed().as_millis() as u64,
            })
            .collect()
    }

    /// A notice of `kind`: said unless one of that kind was said within [`NOTICE_EVERY`]
    /// (then counted, and the count said with the next one).
    pub fn notice(&self, level: Level, kind: &str, message: &str) {
        let now = Instant::now();
        let held_back = {
            let mut notices = lock(&self.notices);
            match notices.get_mut(kind) {
                Some(n) if now.duration_since(n.last) < NOTICE_EVERY => {
                    n.held_back += 1;
                    return;
                }
                Some(n) => {
                    n.last = now;
                    std::mem::take(&mut n.held_back)
                }
                None => {
                    notices.insert(
                        kind.to_owned(),
                        Notice {
                            last: now,
                            held_back: 0,
                        },
                    );
                    0
                }
            }
        };
        let mut text = self.sanitizer.sanitize_str(message).into_owned();
        if held_back > 0 {
            let _ = write!(text, " ({held_back} more like it since the last one)");
        }
        self.say(level, &text);
    }

    /// Says `message` (already sanitized) through `tracing` when the subscriber wants
    /// the target, else on stderr.
    fn say(&self, level: Level, message: &str) {
        let service = self.service.as_str();
        if tracing::enabled!(target: TARGET, Level::WARN) {
            match level {
                Level::ERROR => tracing::error!(target: TARGET, service, "{message}"),
                Level::WARN => tracing::warn!(target: TARGET, service, "{message}"),
                _ => tracing::info!(target: TARGET, service, "{message}"),
            }
        } else {
            eprintln!("tracing-omninode [{service}] {level}: {message}");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    /// Collects what the diagnostics say through `tracing`.
    #[derive(Clone, Default)]
    struct Said(Arc<Mutex<Vec<(Level, String)>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Said {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Msg(String);
            impl tracing::field::Visit for Msg {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    if f.name() == "message" {
                        self.0 = format!("{v:?}");
                    }
                }
            }
            let mut m = Msg(String::new());
            event.record(&mut m);
            if event.metadata().target() == TARGET {
                lock(&self.0).push((*event.metadata().level(), m.0));
            }
        }
    }

    fn with_said(f: impl FnOnce(&Diagnostics)) -> Vec<(Level, String)> {
        let said = Said::default();
        let subscriber = tracing_subscriber::registry().with(said.clone());
        let diag = Diagnostics::new("svc", Sanitizer::default());
        tracing::subscriber::with_default(subscriber, || f(&diag));
        let out = lock(&said.0).clone();
        out
    }

    #[test]
    fn a_condition_is_said_once_when_it_starts_and_once_when_it_clears() {
        let said = with_said(|d| {
            d.raise(Condition::TopicMissing, "t1", "topic t1 is missing");
            d.raise(Condition::TopicMissing, "t1", "topic t1 is missing");
            d.raise(Condition::TopicMissing, "t2", "topic t2 is missing");
            assert_eq!(d.problems().len(), 2);
            d.delivered("t1");
            assert_eq!(d.problems().len(), 1);
            d.delivered("t1");
            d.delivered("t2");
            assert!(d.problems().is_empty());
        });
        let levels: Vec<Level> = said.iter().map(|(l, _)| *l).collect();
        assert_eq!(levels, [Level::WARN, Level::WARN, Level::INFO, Level::INFO]);
        assert_eq!(said[0].1, "topic t1 is missing");
        assert!(said[2].1.starts_with("cleared after"), "{said:?}");
        assert!(said[2].1.ends_with("TopicMissing (t1)"), "{said:?}");
    }

    #[test]
    fn a_connection_clears_unreachable_tls_and_authentication_only() {
        let said = with_said(|d| {
            d.raise(Condition::TlsFailed, "", "tls");
            d.raise(Condition::AuthenticationFailed, "", "auth");
            d.raise(Condition::BrokerUnreachable, "", "down");
            d.raise(Condition::Spooling, "", "spooling");
            d.connected();
            let left: Vec<_> = d.problems().into_iter().map(|p| p.condition).collect();
            assert_eq!(left, [Condition::Spooling]);
        });
        assert_eq!(said.len(), 4 + 3);
    }

    #[test]
    fn notices_are_rate_limited_per_kind_and_count_what_was_held_back() {
        let said = with_said(|d| {
            for _ in 0..5 {
                d.notice(Level::WARN, "dlq:t", "dead-lettered");
            }
            d.notice(Level::WARN, "dlq:u", "other topic");
            // Pretend the interval passed.
            lock(&d.notices).get_mut("dlq:t").unwrap().last -= NOTICE_EVERY;
            d.notice(Level::WARN, "dlq:t", "dead-lettered");
        });
        let texts: Vec<&str> = said.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            [
                "dead-lettered",
                "other topic",
                "dead-lettered (4 more like it since the last one)"
            ]
        );
    }

    #[test]
    fn messages_are_sanitized() {
        let said = with_said(|d| {
            d.raise(
                Condition::AuthenticationFailed,
                "",
                "SASL authentication failed for password=hunter2hunter2",
            );
            d.notice(
                Level::ERROR,
                "librdkafka",
                "connect to https://user:s3cr3tpassw0rd@broker:9093 failed",
            );
        });
        for (_, text) in &said {
            assert!(!text.contains("hunter2hunter2"), "{text}");
            assert!(!text.contains("s3cr3tpassw0rd"), "{text}");
        }
        let problems = with_said(|d| {
            d.raise(Condition::TlsFailed, "", "password=hunter2hunter2");
            assert!(!d.problems()[0].message.contains("hunter2hunter2"));
        });
        assert_eq!(problems.len(), 1);
    }
}
