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
}
