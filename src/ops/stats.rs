//! `dlq stats`: every `*.dlq` topic under the prefix, counted by error class and code, with
//! the oldest and newest `dead_lettered_at` of each group. Records that are not DLQ records
//! are counted too, under [`NOT_DLQ`], never left out.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::contract::dlq::DlqRecord;
use crate::contract::timestamp::Timestamp;
use crate::kafka::client::{ClientOptions, OpsError};
use crate::kafka::consumer::{Reader, Record, Start};
use crate::ops::{dlq_topics, POLL};

/// The class (and code) under which records that are not DLQ records are counted.
pub const NOT_DLQ: &str = "(not a DLQ record)";

/// One group of records: how many, and when the oldest and newest were dead-lettered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Row {
    /// Records.
    pub count: u64,
    /// Oldest `dead_lettered_at` (none for records that are not DLQ records).
    pub oldest: Option<Timestamp>,
    /// Newest `dead_lettered_at`.
    pub newest: Option<Timestamp>,
}

/// Counts per topic × class × code, and the DLQ topics found (empty ones too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `(topic, class, code)` -> row.
    pub rows: BTreeMap<(String, String, String), Row>,
    /// Every DLQ topic read.
    pub topics: Vec<String>,
}

impl Stats {
    /// Counts one record.
    pub fn add(&mut self, rec: &Record) {
        let (class, code, at) = match DlqRecord::parse(rec.value.as_deref().unwrap_or_default()) {
            Ok(d) => (d.error.class, d.error.code, Some(d.dead_lettered_at)),
            Err(_) => (NOT_DLQ.to_owned(), "-".to_owned(), None),
        };
        let row = self
            .rows
            .entry((rec.topic.clone(), class, code))
            .or_default();
        row.count += 1;
        if let Some(at) = at {
            row.oldest = Some(row.oldest.map_or(at, |o| o.min(at)));
            row.newest = Some(row.newest.map_or(at, |n| n.max(at)));
        }
    }

    /// Records counted, all topics.
    pub fn total(&self) -> u64 {
        self.rows.values().map(|r| r.count).sum()
    }
}

/// Reads every DLQ topic under `prefix` to its end and counts what it holds.
pub fn run(opts: &ClientOptions, prefix: &str, stop: &AtomicBool) -> Result<Stats, OpsError> {
    let topics: Vec<String> = dlq_topics(opts, prefix)?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let mut stats = Stats {
        topics: topics.clone(),
        ..Stats::default()
    };
    if topics.is_empty() {
        return Ok(stats);
    }
    let mut reader = Reader::open(opts, &topics, Start::Beginning, false)?;
    while !stop.load(Ordering::Relaxed) && !reader.finished() {
        if let Some(rec) = reader.next(POLL)? {
            stats.add(&rec);
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(topic: &str, value: &[u8]) -> Record {
        Record {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: None,
            value: Some(value.to_vec()),
            headers: Vec::new(),
        }
    }

    fn dlq(class: &str, at: &str) -> Vec<u8> {
        serde_json::json!({
            "original_topic": "t", "original_event": {}, "original_event_truncated": false,
            "error": {"class": class, "code": "C", "message": "", "retryable": false},
            "retry_count": 0, "first_failed_at": at, "dead_lettered_at": at,
            "producer": {"service_name": "s", "instance_id": "i"}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn counts_by_class_and_code_with_oldest_and_newest() {
        let mut s = Stats::default();
        let (t1, t2, t3) = (
            "2026-11-28T14:00:00.000000Z",
            "2026-11-28T15:00:00.000000Z",
            "2026-11-28T16:00:00.000000Z",
        );
        for at in [t2, t1, t3] {
            s.add(&rec("a.dlq", &dlq("NON_RETRYABLE_POLICY", at)));
        }
        s.add(&rec("a.dlq", b"garbage"));
        s.add(&rec("b.dlq", &dlq("NON_RETRYABLE_VALIDATION", t1)));
        assert_eq!(s.total(), 5);
        let row = s.rows[&("a.dlq".into(), "NON_RETRYABLE_POLICY".into(), "C".into())];
        assert_eq!(row.count, 3);
        assert_eq!(row.oldest.unwrap().to_string(), t1);
        assert_eq!(row.newest.unwrap().to_string(), t3);
        let bad = s.rows[&("a.dlq".into(), NOT_DLQ.into(), "-".into())];
        assert_eq!((bad.count, bad.oldest, bad.newest), (1, None, None));
    }
}
