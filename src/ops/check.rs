//! `validate`: every envelope of a stream against the contract, including what a JSON
//! Schema cannot say.
//!
//! Per record: the envelope against its catalog entry ([`validate_envelope`], which
//! `tests/schemas.rs` proves gives the shipped schema's verdict), the record key against
//! the catalog's partition key, every SPEC §2 header against the envelope, and
//! `x-schema-hash` against the shipped schema file. Over the stream: sequence numbers per
//! producing instance (`source.service_name`, `source.instance_id`), where a gap is a
//! problem unless an `OMNINODE_EVENTS_DROPPED` (or `OMNINODE_EVENT_SKIPPED`) report of that
//! instance covers it, and one
//! number used by two different events is one (the same event twice, a redelivery or a
//! replay, is not). Gaps mean something only when the stream holds every topic the
//! instance writes to (`validate --all`): an instance numbers all its events in one row. A DLQ record is checked through the envelope it carries
//! (its headers are the original's); a truncated one only by its headers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::contract::catalog::{lookup, EventKind};
use crate::contract::dlq::{DlqRecord, OriginalEvent};
use crate::contract::envelope::Envelope;
use crate::contract::partition::PartitionPolicy;
use crate::contract::validate::validate_envelope;
use crate::contract::wire::{header, is_valid_traceparent};
use crate::kafka::client::{ClientOptions, OpsError};
use crate::kafka::consumer::{Reader, Start};
use crate::ops::POLL;

/// One problem and where it is (`topic[partition]@offset`, or `file:line`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Where.
    pub at: String,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.problem)
    }
}

/// A record to check: what is known of it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Where it is.
    pub at: &'a str,
    /// The record key, when known (not for a bare envelope from a file).
    pub key: Option<&'a str>,
    /// The headers, when known.
    pub headers: Option<&'a [(String, String)]>,
    /// The value (an envelope or a DLQ record).
    pub value: &'a Value,
}

/// Sequences seen per producing instance.
#[derive(Debug, Default)]
struct Instance {
    /// Sequence -> the event id that has it and where it was first seen.
    seen: BTreeMap<u64, (String, String)>,
    /// Two different events with one sequence number.
    twice: Vec<Finding>,
    /// Ranges reported dropped in-stream.
    dropped: Vec<(u64, u64)>,
}

/// Checks a stream record by record, then its sequences ([`Checker::finish`]).
#[derive(Debug, Default)]
pub struct Checker {
    instances: BTreeMap<(String, String), Instance>,
    /// Records checked.
    pub checked: u64,
    /// Records with at least one problem.
    pub bad_records: u64,
}

impl Checker {
    /// A checker for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a record whose value is not JSON; returns its problem.
    pub fn not_json(&mut self, at: String, value: &[u8], e: &serde_json::Error) -> Finding {
        self.checked += 1;
        self.bad_records += 1;
        let shown: String = String::from_utf8_lossy(value).chars().take(40).collect();
        Finding {
            at,
            problem: format!("not JSON ({e}): {shown:?}"),
        }
    }

    /// Checks one record; returns its problems.
    pub fn check(&mut self, input: Input<'_>) -> Vec<Finding> {
        self.checked += 1;
        let mut problems = Vec::new();
        let envelope = match DlqRecord::parse(input.value.to_string().as_bytes()) {
            Ok(d) => match d.original_event {
                OriginalEvent::Json(text) => serde_json::from_str(&text).ok(),
                OriginalEvent::Text(_) => None,
            },
            Err(_) => Some(input.value.clone()),
        };
        if let Some(env) = &envelope {
            self.check_envelope(env, input, &mut problems);
        }
        if !problems.is_empty() {
            self.bad_records += 1;
        }
        problems
            .into_iter()
            .map(|problem| Finding {
                at: input.at.to_owned(),
                problem,
            })
            .collect()
    }

    fn check_envelope(&mut self, env: &Value, input: Input<'_>, out: &mut Vec<String>) {
        if let Err(errors) = validate_envelope(env) {
            out.extend(errors.iter().map(|e| format!("envelope {e}")));
        }
        if !env.is_object() {
            return;
        }
        let kind = env
            .get("event_type")
            .and_then(Value::as_str)
            .and_then(lookup);
        if let (Some(key), Some(kind)) = (input.key, kind) {
            if let Some(expected) = partition_key(env) {
                if key != expected {
                    let field = kind.family.default_key_field();
                    out.push(format!(
                        "key `{key}` is not the catalog partition key `{expected}` (payload.{field})"
                    ));
                }
            }
        }
        if let Some(headers) = input.headers {
            check_headers(env, kind, headers, out);
        }
        self.note_sequence(env, input.at);
    }

    fn note_sequence(&mut self, env: &Value, at: &str) {
        let source = |f: &str| {
            env.pointer(&format!("/source/{f}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(service), Some(instance), Some(seq)) = (
            source("service_name"),
            source("instance_id"),
            env.get("sequence").and_then(Value::as_u64),
        ) else {
            return;
        };
        let inst = self.instances.entry((service, instance)).or_default();
        let n = |f: &str| {
            env.pointer(&format!("/payload/context/{f}"))
                .and_then(Value::as_u64)
        };
        match env.pointer("/payload/code").and_then(Value::as_str) {
            Some("OMNINODE_EVENTS_DROPPED") => {
                if let (Some(a), Some(b)) = (n("first_sequence"), n("last_sequence")) {
                    inst.dropped.push((a, b));
                }
            }
            // An event given up on for an idempotency error: its sequence may be missing.
            Some("OMNINODE_EVENT_SKIPPED") => {
                if let Some(s) = n("skipped_sequence") {
                    inst.dropped.push((s, s));
                }
            }
            _ => {}
        }
        let event_id = env
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match inst.seen.get(&seq) {
            // The same event twice (an at-least-once redelivery, a replay) is no problem.
            Some((id, _)) if id == event_id => {}
            Some((id, first)) => {
                self.bad_records += 1;
                inst.twice.push(Finding {
                    at: at.to_owned(),
                    problem: format!(
                        "sequence {seq} is also used by event {id} at {first}: two events, one sequence number"
                    ),
                });
            }
            None => {
                inst.seen.insert(seq, (event_id.to_owned(), at.to_owned()));
            }
        }
    }

    /// The stream-wide problems: sequence gaps nobody reported, one sequence number used by
    /// two events.
    pub fn finish(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for ((service, instance), inst) in &self.instances {
            out.extend(inst.twice.iter().cloned());
            let mut prev: Option<u64> = None;
            for (&seq, (_, at)) in &inst.seen {
                if let Some(p) = prev.filter(|p| seq > p + 1) {
                    for (from, to) in unreported(p + 1, seq - 1, &inst.dropped) {
                        let n = to - from + 1;
                        let range = if n == 1 {
                            format!("{from}")
                        } else {
                            format!("{from}..{to}")
                        };
                        out.push(Finding {
                            at: at.to_owned(),
                            problem: format!(
                                "sequence gap before this record: {range} of {service}/{instance} missing ({n} event{}, not reported as dropped or skipped)",
                                if n == 1 { "" } else { "s" }
                            ),
                        });
                    }
                }
                prev = Some(seq);
            }
        }
        out
    }
}

/// The parts of the gap `from..=to` that no reported range covers, in order.
fn unreported(from: u64, to: u64, reported: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut covering: Vec<(u64, u64)> = reported
        .iter()
        .copied()
        .filter(|&(a, b)| a <= to && b >= from)
        .collect();
    covering.sort_unstable();
    let mut out = Vec::new();
    let mut next = from;
    for (a, b) in covering {
        if a > next {
            out.push((next, a - 1));
        }
        next = next.max(b.saturating_add(1));
        if next > to {
            return out;
        }
    }
    out.push((next, to));
    out
}

/// Checks every record of `topics` from `start` to the end of each partition (or until
/// `stop`), calling `report` with each problem as it is found and the stream-wide ones at
/// the end.
pub fn check_topics(
    opts: &ClientOptions,
    topics: &[String],
    start: Start,
    stop: &AtomicBool,
    mut report: impl FnMut(&Finding),
) -> Result<Checker, OpsError> {
    let mut reader = Reader::open(opts, topics, start, false)?;
    let mut checker = Checker::new();
    while !stop.load(Ordering::Relaxed) && !reader.finished() {
        let Some(rec) = reader.next(POLL)? else {
            continue;
        };
        let at = rec.position();
        let raw = rec.value.as_deref().unwrap_or_default();
        let value = match serde_json::from_slice::<Value>(raw) {
            Ok(v) => v,
            Err(e) => {
                report(&checker.not_json(at, raw, &e));
                continue;
            }
        };
        let headers: Vec<(String, String)> = rec
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let key = rec.key_text();
        let input = Input {
            at: &at,
            key: key.as_deref(),
            headers: Some(&headers),
            value: &value,
        };
        checker.check(input).iter().for_each(&mut report);
    }
    checker.finish().iter().for_each(&mut report);
    Ok(checker)
}

/// Checks JSON lines read from `input` (named `name` in findings): bare envelopes, or the
/// records `tail --format json` writes (then their key and headers are checked too).
pub fn check_lines(
    input: impl std::io::BufRead,
    name: &str,
    mut report: impl FnMut(&Finding),
) -> Result<Checker, OpsError> {
    let mut checker = Checker::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|source| OpsError::Io {
            what: format!("reading {name}"),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let mut at = format!("{name}:{}", n + 1);
        let value = match serde_json::from_str::<Value>(&line) {
            Ok(v) => v,
            Err(e) => {
                report(&checker.not_json(at, line.as_bytes(), &e));
                continue;
            }
        };
        let is_record = ["topic", "offset", "value"]
            .iter()
            .all(|f| value.get(f).is_some());
        // `tail --format json` carries a value that is not JSON as a string.
        if let Some(Err(e)) = value["value"]
            .as_str()
            .filter(|_| is_record)
            .map(serde_json::from_str::<Value>)
        {
            let raw = value["value"].as_str().unwrap_or_default().as_bytes();
            report(&checker.not_json(at, raw, &e));
            continue;
        }
        let findings = if is_record {
            if let (Some(t), Some(p), Some(o)) = (
                value["topic"].as_str(),
                value["partition"].as_i64(),
                value["offset"].as_i64(),
            ) {
                at = format!("{at} ({t}[{p}]@{o})");
            }
            let headers: Vec<(String, String)> = value["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            checker.check(Input {
                at: &at,
                key: value["key"].as_str(),
                headers: Some(&headers),
                value: &value["value"],
            })
        } else {
            checker.check(Input {
                at: &at,
                key: None,
                headers: None,
                value: &value,
            })
        };
        findings.iter().for_each(&mut report);
    }
    checker.finish().iter().for_each(&mut report);
    Ok(checker)
}

/// The record key the catalog's partition-key policy gives the envelope.
fn partition_key(env: &Value) -> Option<String> {
    let envelope: Envelope = serde_json::from_value(env.clone()).ok()?;
    PartitionPolicy::new().key_for(&envelope).ok()
}

/// The SPEC §2 headers against the envelope (a DLQ record's `x-dlq-*` are its own).
fn check_headers(
    env: &Value,
    kind: Option<&EventKind>,
    headers: &[(String, String)],
    out: &mut Vec<String>,
) {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let text = |field: &str| match env.get(field) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let pairs = [
        (header::EVENT_ID, text("event_id")),
        (header::EVENT_TYPE, text("event_type")),
        (header::CORRELATION_ID, text("correlation_id")),
        (header::CAUSATION_ID, text("causation_id")),
        (header::TENANT, text("tenant_id")),
        (header::SEQUENCE, text("sequence")),
        (header::CONTENT_TYPE, Some("application/json".into())),
    ];
    for (name, want) in pairs {
        match (get(name), want) {
            (Some(have), Some(want)) if have != want => out.push(format!(
                "header {name} `{have}` does not match the envelope (`{want}`)"
            )),
            (None, Some(want)) => out.push(format!(
                "header {name} is missing (the envelope says `{want}`)"
            )),
            (Some(have), None) => out.push(format!(
                "header {name} `{have}` is set but the envelope has no value for it"
            )),
            _ => {}
        }
    }
    match get(header::TRACEPARENT) {
        None => out.push(format!("header {} is missing", header::TRACEPARENT)),
        Some(tp) if !is_valid_traceparent(tp) => out.push(format!(
            "header {} `{tp}` is not 00-<32 hex>-<16 hex>-<2 hex>",
            header::TRACEPARENT
        )),
        Some(_) => {}
    }
    if let Some(kind) = kind {
        let want = kind.schema_hash();
        match get(header::SCHEMA_HASH) {
            None => out.push(format!("header {} is missing", header::SCHEMA_HASH)),
            Some(have) if have != want => out.push(format!(
                "header {} `{have}` is not the hash of the shipped {} ({want})",
                header::SCHEMA_HASH,
                kind.schema_ref()
            )),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
