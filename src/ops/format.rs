//! How a record is shown: [`Facts`] (what a record says about its event, from its headers,
//! its envelope, or the envelope inside a DLQ record) and the three output formats of
//! `tail`: one readable line for people, one JSON object per record, or the raw value.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::contract::dlq::{DlqRecord, OriginalEvent};
use crate::contract::wire::header;
use crate::kafka::consumer::Record;

/// Output format of `tail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One readable line per event.
    Pretty,
    /// One JSON object per record: topic, partition, offset, timestamp, key, headers, value.
    Json,
    /// The record's value as it is, one per line.
    Raw,
}

/// What a record says about its event.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The envelope (for a DLQ record: the original event, when it is JSON).
    pub envelope: Option<Value>,
    /// The DLQ record, when the value is one.
    pub dlq: Option<DlqRecord>,
    /// `event_type`.
    pub event_type: Option<String>,
    /// `correlation_id`.
    pub correlation_id: Option<String>,
    /// `tenant_id`.
    pub tenant: Option<String>,
}

impl Facts {
    /// Reads the facts of a record: the headers first (DLQ records keep the original's),
    /// then the envelope.
    pub fn of(rec: &Record) -> Facts {
        let value = rec.value.as_deref().unwrap_or_default();
        let dlq = DlqRecord::parse(value).ok();
        let envelope = match &dlq {
            Some(d) => match &d.original_event {
                OriginalEvent::Json(text) => serde_json::from_str(text).ok(),
                OriginalEvent::Text(_) => None,
            },
            None => serde_json::from_slice::<Value>(value)
                .ok()
                .filter(Value::is_object),
        };
        let pick = |h: &str, field: &str| {
            rec.header(h).map(|v| v.into_owned()).or_else(|| {
                envelope
                    .as_ref()
                    .and_then(|e| e.get(field))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
        };
        Facts {
            event_type: pick(header::EVENT_TYPE, "event_type"),
            correlation_id: pick(header::CORRELATION_ID, "correlation_id"),
            tenant: pick(header::TENANT, "tenant_id"),
            envelope,
            dlq,
        }
    }
}

/// The payload fields a person wants to see first, per event type.
const HIGHLIGHTS: &[(&str, &[&str])] = &[
    (
        "omninode.logging.application.v1",
        &["level", "message", "code"],
    ),
    (
        "omninode.logging.audit.v1",
        &["action", "actor", "resource", "outcome"],
    ),
    (
        "omninode.logging.security.v1",
        &["event_type", "user_id", "resource", "decision"],
    ),
    (
        "omninode.agent.execution.started.v1",
        &["agent_name", "user_request"],
    ),
    (
        "omninode.agent.execution.completed.v1",
        &["agent_name", "duration_ms", "quality_score"],
    ),
    (
        "omninode.agent.execution.failed.v1",
        &["agent_name", "error_type", "error_message"],
    ),
    (
        "omninode.agent.quality.gate.passed.v1",
        &["gate_name", "score", "threshold"],
    ),
    (
        "omninode.agent.quality.gate.failed.v1",
        &["gate_name", "score", "threshold", "failure_reasons"],
    ),
    (
        "omninode.agent.provider.selected.v1",
        &["provider_name", "model_name"],
    ),
    (
        "omninode.agent.confidence.scored.v1",
        &["agent_name", "confidence_score"],
    ),
    ("omninode.agent.routing.requested.v1", &["user_request"]),
    (
        "omninode.agent.routing.completed.v1",
        &["selected_agent", "confidence_score", "duration_ms"],
    ),
    (
        "omninode.agent.routing.failed.v1",
        &["error_type", "error_message"],
    ),
    (
        "omninode.agent.transformation.started.v1",
        &["source_agent", "target_agent"],
    ),
    (
        "omninode.agent.transformation.completed.v1",
        &["source_agent", "target_agent", "duration_ms"],
    ),
    (
        "omninode.agent.transformation.failed.v1",
        &["source_agent", "target_agent", "error_message"],
    ),
    (
        "omninode.intelligence.code-analysis.requested.v1",
        &["operation_type", "language", "source_path"],
    ),
    (
        "omninode.intelligence.code-analysis.completed.v1",
        &["operation_type", "duration_ms", "results_summary"],
    ),
    (
        "omninode.intelligence.code-analysis.failed.v1",
        &["operation_type", "error_code", "error_message"],
    ),
];

fn highlights(event_type: &str) -> &'static [&'static str] {
    HIGHLIGHTS
        .iter()
        .find(|(t, _)| *t == event_type)
        .map_or(&[], |(_, f)| f)
}

/// A JSON value on one short line: bare words stay bare, text with spaces is quoted, long
/// text is cut.
fn short(v: &Value) -> String {
    const MAX: usize = 80;
    let text = match v {
        Value::String(s) if !s.is_empty() && !s.contains([' ', '"', '=', '\n']) => s.clone(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// One readable line: time, event type, key, correlation id, the payload fields that
/// matter for the type; for a DLQ record the error class and code first. ANSI colour only
/// when `colour` is set (the CLI sets it on a terminal without `NO_COLOR`).
pub fn pretty(rec: &Record, facts: &Facts, colour: bool) -> String {
    let paint = Paint(colour);
    let env = facts.envelope.as_ref();
    let time = env
        .and_then(|e| e.get("timestamp"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| facts.dlq.as_ref().map(|d| d.dead_lettered_at.to_string()))
        .unwrap_or_else(|| format!("ts={}", rec.timestamp_ms.unwrap_or(-1)));
    let mut line = paint.wrap("2", &time);
    if let Some(d) = &facts.dlq {
        let what = format!(" DLQ {}/{}", d.error.class, d.error.code);
        line.push_str(&paint.wrap("1;31", &what));
    }
    let event_type = facts.event_type.as_deref().unwrap_or("(not an envelope)");
    let failed = event_type.contains(".failed.");
    let _ = write!(
        line,
        " {}",
        paint.wrap(if failed { "31" } else { "36" }, event_type)
    );
    let _ = write!(line, " key={}", rec.key_text().as_deref().unwrap_or("-"));
    if let Some(c) = &facts.correlation_id {
        let _ = write!(line, " corr={c}");
    }
    if let Some(n) = rec.header(crate::contract::dlq::REPLAY_COUNT_HEADER) {
        let _ = write!(line, " replay={n}");
    }
    let payload = env.and_then(|e| e.get("payload"));
    for field in highlights(event_type) {
        if let Some(v) = payload.and_then(|p| p.get(*field)).filter(|v| !v.is_null()) {
            let _ = write!(line, " {field}={}", short(v));
        }
    }
    if let Some(d) = &facts.dlq {
        if d.original_event_truncated {
            line.push_str(" (original truncated)");
        }
        let _ = write!(
            line,
            " retries={} error={}",
            d.retry_count,
            short(&Value::String(d.error.message.clone()))
        );
    }
    if env.is_none() && facts.dlq.is_none() {
        let raw = String::from_utf8_lossy(rec.value.as_deref().unwrap_or_default());
        let _ = write!(line, " value={}", short(&Value::String(raw.into_owned())));
    }
    let _ = write!(
        line,
        " {}",
        paint.wrap("2", &format!("@{}", rec.position()))
    );
    line
}

/// The record as one JSON object (kcat `-J` style): the value is embedded as JSON when it
/// is JSON, else as a string.
pub fn json(rec: &Record) -> String {
    let value = rec.value.as_deref().unwrap_or_default();
    let value = serde_json::from_slice::<Value>(value)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(value).into_owned()));
    let headers: Map<String, Value> = rec
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned().into()))
        .collect();
    json!({
        "topic": rec.topic,
        "partition": rec.partition,
        "offset": rec.offset,
        "timestamp_ms": rec.timestamp_ms,
        "key": rec.key_text(),
        "headers": headers,
        "value": value,
    })
    .to_string()
}

/// The record's value as text.
pub fn raw(rec: &Record) -> String {
    String::from_utf8_lossy(rec.value.as_deref().unwrap_or_default()).into_owned()
}

/// The record in `format`.
pub fn render(rec: &Record, facts: &Facts, format: Format, colour: bool) -> String {
    match format {
        Format::Pretty => pretty(rec, facts, colour),
        Format::Json => json(rec),
        Format::Raw => raw(rec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::catalog::{lookup, CATALOG};

    #[test]
    fn every_catalog_type_has_highlights_that_are_its_fields() {
        assert_eq!(HIGHLIGHTS.len(), CATALOG.len());
        for (t, fields) in HIGHLIGHTS {
            let kind = lookup(t).unwrap_or_else(|| panic!("{t} is not in the catalog"));
            for f in *fields {
                assert!(kind.fields.iter().any(|(n, _)| n == f), "{t}: {f}");
            }
        }
    }

    fn record(value: Value, headers: &[(&str, &str)]) -> Record {
        Record {
            topic: "omninode.logging.audit.v1".into(),
            partition: 0,
            offset: 7,
            timestamp_ms: Some(1),
            key: Some(b"acme".to_vec()),
            value: Some(value.to_string().into_bytes()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn pretty_line_shows_what_matters_without_colour() {
        let rec = record(
            json!({"event_type": "omninode.logging.audit.v1", "timestamp": "2026-11-28T14:03:07.123456Z",
                   "correlation_id": "c-1", "tenant_id": "acme",
                   "payload": {"action": "user.delete", "actor": "alice", "resource": "user/42",
                               "outcome": "success", "ignored": "x"}}),
            &[],
        );
        let line = pretty(&rec, &Facts::of(&rec), false);
        assert_eq!(
            line,
            "2026-11-28T14:03:07.123456Z omninode.logging.audit.v1 key=acme corr=c-1 \
             action=user.delete actor=alice resource=user/42 outcome=success \
             @omninode.logging.audit.v1[0]@7"
        );
        assert!(pretty(&rec, &Facts::of(&rec), true).contains("\x1b["));
    }

    #[test]
    fn headers_win_and_foreign_values_are_shown() {
        let rec = record(
            json!("plain text"),
            &[("x-event-type", "omninode.x.v1"), ("x-replay-count", "2")],
        );
        let facts = Facts::of(&rec);
        assert_eq!(facts.event_type.as_deref(), Some("omninode.x.v1"));
        assert!(pretty(&rec, &facts, false).contains(" replay=2 "));
        assert!(pretty(&rec, &facts, false).contains("value=\"\\\"plain text\\\"\""));
        let j: Value = serde_json::from_str(&json(&rec)).unwrap();
        assert_eq!(j["headers"]["x-event-type"], "omninode.x.v1");
        assert_eq!(j["value"], "plain text");
        assert_eq!(j["key"], "acme");
    }
}
