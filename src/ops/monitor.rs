//! `dlq monitor`: watch every `*.dlq` topic and alert when one grows.
//!
//! A topic alerts when it grew by at least [`Thresholds::threshold`] records since its
//! last alert (or since the monitor started) and [`Thresholds::cooldown`] has passed since
//! its last alert; growth during the cooldown is kept and alerts when the cooldown ends.
//! [`Monitor`] is the pure rule; [`run`] feeds it from the cluster and re-discovers DLQ
//! topics every interval (a new one is read from its beginning).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::contract::dlq::DlqRecord;
use crate::contract::events::ApplicationLog;
use crate::kafka::client::{ClientOptions, OpsError};
use crate::kafka::consumer::{Reader, Start};
use crate::ops::stats::NOT_DLQ;
use crate::ops::{dlq_topics, POLL};

/// The `code` of the alert event.
pub const ALERT_CODE: &str = "OMNINODE_DLQ_THRESHOLD";

/// When a topic alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Records of growth since the last alert.
    pub threshold: u64,
    /// Least time between two alerts of one topic.
    pub cooldown: Duration,
}

/// One alert: a DLQ topic grew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The DLQ topic.
    pub topic: String,
    /// Records added since the last alert.
    pub growth: u64,
    /// Those records by error class.
    pub classes: BTreeMap<String, u64>,
}

impl Alert {
    /// `CLASS=n, CLASS=n`.
    pub fn classes_text(&self) -> String {
        self.classes
            .iter()
            .map(|(c, n)| format!("{c}={n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The `omninode.logging.application.v1` event that reports the alert in-stream
    /// (`code: OMNINODE_DLQ_THRESHOLD`; topic, growth, classes and threshold in `context`).
    pub fn event(&self, t: &Thresholds) -> ApplicationLog {
        let context = json!({
            "topic": self.topic,
            "growth": self.growth,
            "classes": self.classes,
            "threshold": t.threshold,
            "cooldown_ms": t.cooldown.as_millis() as u64,
        });
        ApplicationLog {
            level: "WARN".into(),
            logger: "omninode_events::dlq_monitor".into(),
            message: format!(
                "DLQ topic {} grew by {} records ({})",
                self.topic,
                self.growth,
                self.classes_text()
            ),
            code: Some(ALERT_CODE.into()),
            context: context.as_object().cloned().unwrap_or_default(),
            ..ApplicationLog::default()
        }
    }
}

#[derive(Debug, Default)]
struct Growth {
    count: u64,
    classes: BTreeMap<String, u64>,
    last_alert: Option<Instant>,
}

/// The alert rule over what arrived on each topic.
#[derive(Debug)]
pub struct Monitor {
    thresholds: Thresholds,
    topics: BTreeMap<String, Growth>,
}

impl Monitor {
    /// A monitor that has seen nothing yet.
    pub fn new(thresholds: Thresholds) -> Self {
        Monitor {
            thresholds,
            topics: BTreeMap::new(),
        }
    }

    /// A record of `class` arrived on `topic`.
    pub fn record(&mut self, topic: &str, class: &str) {
        let g = self.topics.entry(topic.to_owned()).or_default();
        g.count += 1;
        *g.classes.entry(class.to_owned()).or_default() += 1;
    }

    /// The alerts due at `now`; each resets its topic's growth and starts its cooldown.
    pub fn due(&mut self, now: Instant) -> Vec<Alert> {
        let t = self.thresholds;
        let mut out = Vec::new();
        for (topic, g) in &mut self.topics {
            let cooled = g
                .last_alert
                .is_none_or(|at| now.saturating_duration_since(at) >= t.cooldown);
            if g.count >= t.threshold.max(1) && cooled {
                out.push(Alert {
                    topic: topic.clone(),
                    growth: std::mem::take(&mut g.count),
                    classes: std::mem::take(&mut g.classes),
                });
                g.last_alert = Some(now);
            }
        }
        out
    }
}

/// Watches every DLQ topic under `prefix` from its current end until `stop`, checking the
/// rule every `interval`; `watching` is called with the topics whenever the set changes,
/// `alert` with every alert.
pub fn run(
    opts: &ClientOptions,
    prefix: &str,
    thresholds: Thresholds,
    interval: Duration,
    stop: &AtomicBool,
    mut watching: impl FnMut(&[String]),
    mut alert: impl FnMut(&Alert),
) -> Result<(), OpsError> {
    let mut monitor = Monitor::new(thresholds);
    let mut topics: Vec<String> = Vec::new();
    let mut reader: Option<Reader> = None;
    let mut next_check = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_check {
            let found: Vec<String> = dlq_topics(opts, prefix)?
                .into_iter()
                .map(|t| t.name)
                .collect();
            if found != topics {
                let mut ranges = reader.as_ref().map(Reader::positions).unwrap_or_default();
                let fresh = if topics.is_empty() && reader.is_none() {
                    // At start: from the end of every topic.
                    Reader::open(opts, &found, Start::End, true)?.positions()
                } else {
                    let new: Vec<String> = found
                        .iter()
                        .filter(|t| !topics.contains(t))
                        .cloned()
                        .collect();
                    Reader::open(opts, &new, Start::Beginning, true)?.positions()
                };
                ranges.retain(|(t, _, _)| found.contains(t));
                ranges.extend(fresh);
                reader = Some(Reader::open_ranges(opts, &ranges, true)?);
                topics = found;
                watching(&topics);
            }
            for a in monitor.due(Instant::now()) {
                alert(&a);
            }
            next_check = Instant::now() + interval;
        }
        let Some(r) = reader.as_mut() else {
            std::thread::sleep(POLL.min(interval));
            continue;
        };
        if let Some(rec) = r.next(POLL.min(interval))? {
            let class = DlqRecord::parse(rec.value.as_deref().unwrap_or_default())
                .map_or_else(|_| NOT_DLQ.to_owned(), |d| d.error.class);
            monitor.record(&rec.topic, &class);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_once_per_crossing_and_respects_the_cooldown() {
        let t = Thresholds {
            threshold: 3,
            cooldown: Duration::from_secs(60),
        };
        let mut m = Monitor::new(t);
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        for _ in 0..2 {
            m.record("a.dlq", "NON_RETRYABLE_POLICY");
        }
        assert!(m.due(at(0)).is_empty(), "below the threshold");
        m.record("a.dlq", "NON_RETRYABLE_VALIDATION");
        let first = m.due(at(1));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].growth, 3);
        assert_eq!(
            first[0].classes_text(),
            "NON_RETRYABLE_POLICY=2, NON_RETRYABLE_VALIDATION=1"
        );
        assert!(m.due(at(2)).is_empty(), "once per crossing");
        for _ in 0..5 {
            m.record("a.dlq", "NON_RETRYABLE_POLICY");
        }
        assert!(m.due(at(30)).is_empty(), "in the cooldown");
        let second = m.due(at(61));
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].growth, 5, "growth kept through the cooldown");
        m.record("b.dlq", "X");
        assert!(m.due(at(200)).is_empty(), "b is below the threshold");
    }

    #[test]
    fn the_alert_event_is_a_valid_application_log() {
        let t = Thresholds {
            threshold: 10,
            cooldown: Duration::from_secs(900),
        };
        let a = Alert {
            topic: "omninode.logging.audit.v1.dlq".into(),
            growth: 12,
            classes: [("NON_RETRYABLE_POLICY".to_owned(), 12)].into(),
        };
        let e = a.event(&t);
        assert_eq!(e.code.as_deref(), Some(ALERT_CODE));
        assert_eq!(e.context["growth"], 12);
        assert_eq!(e.context["classes"]["NON_RETRYABLE_POLICY"], 12);
        assert_eq!(e.context["topic"], "omninode.logging.audit.v1.dlq");
    }
}
