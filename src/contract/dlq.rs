//! Dead-letter records (SPEC §3): the failed, sanitized envelope with its error metadata,
//! bound for `<original topic>.dlq` under the same key.

use serde_json::{json, Value};

use crate::contract::envelope::Source;
use crate::contract::limits::cap;
use crate::contract::limits::STACK_TRACE_CAP;
use crate::contract::taxonomy::ErrorClass;
use crate::contract::timestamp::Timestamp;
use crate::contract::wire::WireRecord;
use crate::sanitize::Sanitizer;

/// Suffix of every dead-letter topic.
pub const DLQ_SUFFIX: &str = ".dlq";

/// Bytes kept back from `message.max.bytes` for the DLQ record's own fields and headers.
const DLQ_OVERHEAD: usize = 16 * 1024;

/// Why a record is dead-lettered.
#[derive(Debug, Clone)]
pub(crate) struct Failure<'a> {
    pub class: ErrorClass,
    pub code: &'a str,
    pub message: &'a str,
    pub retry_count: u32,
    pub first_failed_at: Timestamp,
}

/// Builds the DLQ record of `original`. The envelope is embedded as JSON when it fits in
/// `max_bytes` (the broker's message size), otherwise as a truncated string marked
/// `original_event_truncated: true`. The error message is sanitized and capped at 8 KiB.
pub(crate) fn dead_letter(
    original: &WireRecord,
    failure: &Failure<'_>,
    producer: &Source,
    sanitizer: &Sanitizer,
    max_bytes: usize,
) -> WireRecord {
    let budget = max_bytes.saturating_sub(DLQ_OVERHEAD).max(1024);
    // The value was sanitized when it was assembled; sanitizing again is idempotent and
    // guards records that reached us some other way (spool files from older versions).
    let value = sanitizer.sanitize_str(&original.value);
    let (original_event, truncated) = if value.len() <= budget {
        match serde_json::from_str::<Value>(&value) {
            Ok(v) => (v, false),
            Err(_) => (Value::String(value.clone().into_owned()), false),
        }
    } else {
        // Carried as a JSON string, the envelope is escaped again (quotes, backslashes):
        // shrink until the escaped form fits the budget.
        let mut cut = value.into_owned();
        cap(&mut cut, budget);
        loop {
            let escaped = serde_json::to_string(&cut).map_or(usize::MAX, |s| s.len());
            if escaped <= budget || cut.is_empty() {
                break;
            }
            // Escaping grows text by a roughly even factor: scale down by it.
            let target = (cut.len() as u128 * budget as u128 / escaped as u128) as usize;
            let target = target.min(cut.len() - 1);
            cap(&mut cut, target);
        }
        (Value::String(cut), true)
    };
    let mut message = sanitizer.sanitize_str(failure.message).into_owned();
    cap(&mut message, STACK_TRACE_CAP);
    let body = json!({
        "original_topic": original.topic,
        "original_event": original_event,
        "original_event_truncated": truncated,
        "error": {
            "class": failure.class.as_str(),
            "code": failure.code,
            "message": message,
            "retryable": failure.class.is_retryable(),
        },
        "retry_count": failure.retry_count,
        "first_failed_at": failure.first_failed_at.to_string(),
        "dead_lettered_at": Timestamp::now().to_string(),
        "producer": {
            "service_name": producer.service_name,
            "instance_id": producer.instance_id,
        },
    });
    let mut headers = original.headers.clone();
    headers.push(("x-dlq-error-class".into(), failure.class.as_str().into()));
    headers.push(("x-dlq-error-code".into(), failure.code.to_owned().into()));
    headers.push((
        "x-dlq-retry-count".into(),
        failure.retry_count.to_string().into(),
    ));
    headers.push(("x-dlq-original-topic".into(), original.topic.clone().into()));
    WireRecord {
        topic: format!("{}{DLQ_SUFFIX}", original.topic),
        key: original.key.clone(),
        headers,
        value: body.to_string(),
    }
}

/// Prefix of the headers a DLQ record adds to the original's (`x-dlq-error-class`, ...).
pub const DLQ_HEADER_PREFIX: &str = "x-dlq-";

/// How many times a record was re-published from a DLQ (`dlq replay` sets it on what it
/// re-sends, one more than the DLQ record carried).
pub const REPLAY_COUNT_HEADER: &str = "x-replay-count";

/// The `error` object of a DLQ record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct DlqError {
    /// The taxonomy class (`NON_RETRYABLE_VALIDATION`, ...).
    pub class: String,
    /// The error code (`MessageSizeTooLarge`, `SchemaValidation`, ...).
    pub code: String,
    /// The (sanitized) message.
    pub message: String,
    /// Whether the class allows retries.
    pub retryable: bool,
}

/// What `original_event` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginalEvent {
    /// The envelope as JSON text, exactly as the DLQ record holds it.
    Json(String),
    /// Text: a truncated envelope, or a value that was not JSON.
    Text(String),
}

/// A DLQ record read back (SPEC §3), as the pipeline writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqRecord {
    /// The topic the event was bound for (with any prefix).
    pub original_topic: String,
    /// The failed event.
    pub original_event: OriginalEvent,
    /// Whether `original_event` was cut to fit the DLQ.
    pub original_event_truncated: bool,
    /// Why it failed.
    pub error: DlqError,
    /// Retries made before it was dead-lettered.
    pub retry_count: u32,
    /// When the first attempt failed.
    pub first_failed_at: Timestamp,
    /// When it was dead-lettered.
    pub dead_lettered_at: Timestamp,
    /// Who dead-lettered it.
    pub producer: Source,
}

/// Why bytes are not a DLQ record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a DLQ record (SPEC §3): {0}")]
pub struct DlqParseError(pub String);

#[derive(serde::Deserialize)]
struct RawDlq<'a> {
    original_topic: String,
    #[serde(borrow)]
    original_event: &'a serde_json::value::RawValue,
    original_event_truncated: bool,
    error: DlqError,
    retry_count: u32,
    first_failed_at: Timestamp,
    dead_lettered_at: Timestamp,
    producer: Source,
}

impl DlqRecord {
    /// Parses the value of a DLQ record; anything else (not JSON, a foreign record, a
    /// missing or mistyped field) is a [`DlqParseError`] that says what is wrong.
    pub fn parse(value: &[u8]) -> Result<DlqRecord, DlqParseError> {
        let raw: RawDlq<'_> =
            serde_json::from_slice(value).map_err(|e| DlqParseError(e.to_string()))?;
        // The raw text starts with the value itself: an object is kept as it is (no second
        // parse), a string is decoded.
        let text = raw.original_event.get();
        let original_event = match text.as_bytes().first() {
            Some(b'{') => OriginalEvent::Json(text.to_owned()),
            Some(b'"') => OriginalEvent::Text(
                serde_json::from_str(text).map_err(|e| DlqParseError(e.to_string()))?,
            ),
            _ => {
                return Err(DlqParseError(
                    "original_event is neither an envelope nor text".into(),
                ))
            }
        };
        Ok(DlqRecord {
            original_topic: raw.original_topic,
            original_event,
            original_event_truncated: raw.original_event_truncated,
            error: raw.error,
            retry_count: raw.retry_count,
            first_failed_at: raw.first_failed_at,
            dead_lettered_at: raw.dead_lettered_at,
            producer: raw.producer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original(value: String) -> WireRecord {
        WireRecord {
            topic: "omninode.logging.audit.v1".into(),
            key: "acme".into(),
            headers: vec![("x-event-id".into(), "e".into())],
            value,
        }
    }

    fn failure() -> Failure<'static> {
        Failure {
            class: ErrorClass::NonRetryableValidation,
            code: "MessageSizeTooLarge",
            message: "too big, password=hunter2",
            retry_count: 0,
            first_failed_at: Timestamp::now(),
        }
    }

    #[test]
    fn small_event_is_embedded_with_metadata() {
        let rec = dead_letter(
            &original(r#"{"a":1}"#.into()),
            &failure(),
            &Source::default(),
            &Sanitizer::default(),
            1_000_000,
        );
        assert_eq!(rec.topic, "omninode.logging.audit.v1.dlq");
        assert_eq!(rec.key, "acme");
        let v: Value = serde_json::from_str(&rec.value).unwrap();
        assert_eq!(v["original_event"]["a"], 1);
        assert_eq!(v["original_event_truncated"], false);
        assert_eq!(v["error"]["class"], "NON_RETRYABLE_VALIDATION");
        assert_eq!(v["error"]["retryable"], false);
        assert_eq!(rec.header("x-dlq-error-code"), Some("MessageSizeTooLarge"));
        assert_eq!(rec.header("x-dlq-retry-count"), Some("0"));
        assert_eq!(rec.header("x-event-id"), Some("e"));
    }

    #[test]
    fn oversize_event_is_truncated_and_marked() {
        // Plain text, and text that JSON escaping doubles (quotes and backslashes).
        for filler in ["x", "\\\""] {
            let big = format!(r#"{{"blob":"{}"}}"#, filler.repeat(100_000));
            let rec = dead_letter(
                &original(big),
                &failure(),
                &Source::default(),
                &Sanitizer::default(),
                100_000,
            );
            assert!(rec.value.len() < 100_000, "{filler}: {}", rec.value.len());
            let v: Value = serde_json::from_str(&rec.value).unwrap();
            assert_eq!(v["original_event_truncated"], true);
            let kept = v["original_event"].as_str().unwrap().len();
            assert!(kept > 30_000, "{filler}: kept only {kept} bytes");
            assert!(
                v["original_event"]
                    .as_str()
                    .unwrap()
                    .starts_with("{\"blob\""),
                "{filler}"
            );
        }
    }

    #[test]
    fn parse_reads_back_what_dead_letter_writes() {
        let rec = dead_letter(
            &original(r#"{"b":1,"a":[2]}"#.into()),
            &failure(),
            &Source::default(),
            &Sanitizer::default(),
            1_000_000,
        );
        let back = DlqRecord::parse(rec.value.as_bytes()).unwrap();
        assert_eq!(back.original_topic, "omninode.logging.audit.v1");
        let OriginalEvent::Json(text) = &back.original_event else {
            panic!("{back:?}")
        };
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v, json!({"a": [2], "b": 1}));
        assert!(!back.original_event_truncated);
        assert_eq!(back.error.class, "NON_RETRYABLE_VALIDATION");
        assert_eq!(back.error.code, "MessageSizeTooLarge");
        assert!(!back.error.message.contains("hunter2"));
        assert!(back.first_failed_at <= back.dead_lettered_at);

        let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(50_000));
        let cut = dead_letter(
            &original(big),
            &failure(),
            &Source::default(),
            &Sanitizer::default(),
            30_000,
        );
        let back = DlqRecord::parse(cut.value.as_bytes()).unwrap();
        assert!(back.original_event_truncated);
        assert!(matches!(back.original_event, OriginalEvent::Text(t) if t.starts_with("{\"blob")));
    }

    #[test]
    fn parse_refuses_what_is_not_a_dlq_record() {
        for bad in [
            &b"not json"[..],
            br#"{"event_id":"x"}"#,
            br#"{"original_topic":"t","original_event":3,"original_event_truncated":false,"error":{"class":"A","code":"B","message":"","retryable":false},"retry_count":0,"first_failed_at":"2026-11-28T14:03:07.123456Z","dead_lettered_at":"2026-11-28T14:03:07.123456Z","producer":{"service_name":"s","instance_id":"i"}}"#,
            br#"{"original_topic":"t","original_event":{},"original_event_truncated":false,"error":{"class":"A","code":"B","message":"","retryable":false},"retry_count":0,"first_failed_at":"yesterday","dead_lettered_at":"2026-11-28T14:03:07.123456Z","producer":{"service_name":"s","instance_id":"i"}}"#,
        ] {
            let e = DlqRecord::parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("not a DLQ record"), "{e}");
        }
    }
}
