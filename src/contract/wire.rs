//! The pure conversion from a (sanitized) envelope to a Kafka record: topic, key, headers
//! and value exactly as SPEC §2 describes. No I/O here.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::contract::catalog::EventKind;
use crate::contract::envelope::Envelope;

/// Header names of SPEC §2.
pub mod header {
    /// Event id.
    pub const EVENT_ID: &str = "x-event-id";
    /// Event type.
    pub const EVENT_TYPE: &str = "x-event-type";
    /// Correlation id.
    pub const CORRELATION_ID: &str = "x-correlation-id";
    /// Causation id (only when not null).
    pub const CAUSATION_ID: &str = "x-causation-id";
    /// Tenant.
    pub const TENANT: &str = "x-tenant";
    /// `sha256:<hex>` of the schema file.
    pub const SCHEMA_HASH: &str = "x-schema-hash";
    /// Sequence number.
    pub const SEQUENCE: &str = "x-sequence";
    /// W3C traceparent.
    pub const TRACEPARENT: &str = "x-traceparent";
    /// Always `application/json`.
    pub const CONTENT_TYPE: &str = "content-type";
}

/// One record ready for Kafka (or for the DLQ, or the spool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRecord {
    /// Topic (with any configured prefix).
    pub topic: String,
    /// Record key.
    pub key: String,
    /// Headers, in order.
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// The JSON value.
    pub value: String,
}

impl WireRecord {
    /// The value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Encodes the record for the spool.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a WireRecord always serializes")
    }

    /// Decodes a record written by [`WireRecord::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<WireRecord> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The Kafka topic of an event type: the optional prefix, then the event type.
pub fn topic_for(prefix: &str, event_type: &str) -> String {
    [prefix, event_type].concat()
}

/// The hyphenated lowercase text of `id` (its `Display`), without going through `fmt`:
/// the worker writes several per event.
pub(crate) fn uuid_text(id: &uuid::Uuid) -> String {
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

/// A W3C `traceparent` derived from the correlation id (as trace id) and a span id, used
/// when no OpenTelemetry context is active.
pub fn derived_traceparent(correlation_id: uuid::Uuid, span_id: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let span_id = if span_id == 0 { 1 } else { span_id };
    let mut text = String::with_capacity(55);
    text.push_str("00-");
    text.push_str(
        correlation_id
            .simple()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    text.push('-');
    for shift in (0..16).rev() {
        text.push(char::from(HEX[(span_id >> (shift * 4)) as usize & 0xf]));
    }
    text.push_str("-01");
    text
}

/// Builds the record of an envelope. `value` is the envelope's exact JSON (already
/// sanitized); `key` comes from the partition policy.
pub fn to_record(
    envelope: &Envelope,
    kind: &EventKind,
    value: String,
    key: String,
    topic_prefix: &str,
    traceparent: String,
) -> WireRecord {
    let mut headers = Vec::with_capacity(9);
    headers.push((
        header::EVENT_ID.into(),
        uuid_text(&envelope.event_id).into(),
    ));
    headers.push((header::EVENT_TYPE.into(), kind.event_type.into()));
    headers.push((
        header::CORRELATION_ID.into(),
        uuid_text(&envelope.correlation_id).into(),
    ));
    if let Some(c) = envelope.causation_id {
        headers.push((header::CAUSATION_ID.into(), uuid_text(&c).into()));
    }
    headers.push((header::TENANT.into(), envelope.tenant_id.clone().into()));
    headers.push((header::SCHEMA_HASH.into(), kind.schema_hash().into()));
    headers.push((
        header::SEQUENCE.into(),
        itoa::Buffer::new()
            .format(envelope.sequence)
            .to_owned()
            .into(),
    ));
    headers.push((header::TRACEPARENT.into(), traceparent.into()));
    headers.push((header::CONTENT_TYPE.into(), "application/json".into()));
    WireRecord {
        topic: topic_for(topic_prefix, &envelope.event_type),
        key,
        headers,
        value,
    }
}

/// Checks a `traceparent` string's shape: `00-<32 hex>-<16 hex>-<2 hex>`.
pub fn is_valid_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1] != "0".repeat(32)
        && parts[2] != "0".repeat(16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::envelope::{Meta, Source};
    use crate::contract::events::{AuditEvent, Event};
    use crate::contract::timestamp::Timestamp;
    use uuid::Uuid;

    #[test]
    fn headers_follow_spec() {
        let corr = Uuid::now_v7();
        let cause = Uuid::now_v7();
        let env = Envelope::new(
            &AuditEvent::default(),
            Meta {
                event_id: Uuid::now_v7(),
                timestamp: Timestamp::now(),
                tenant_id: "acme".into(),
                namespace: "prod".into(),
                source: Source::default(),
                correlation_id: corr,
                causation_id: Some(cause),
                sequence: 9,
            },
        )
        .unwrap();
        let tp = derived_traceparent(corr, 0xabc);
        let rec = to_record(
            &env,
            AuditEvent::kind(),
            "{}".into(),
            "acme".into(),
            "staging.",
            tp.clone(),
        );
        assert_eq!(rec.topic, "staging.omninode.logging.audit.v1");
        assert_eq!(
            rec.header("x-event-type"),
            Some("omninode.logging.audit.v1")
        );
        assert_eq!(
            rec.header("x-causation-id"),
            Some(cause.to_string().as_str())
        );
        assert_eq!(rec.header("x-sequence"), Some("9"));
        assert_eq!(rec.header("content-type"), Some("application/json"));
        assert!(is_valid_traceparent(&tp), "{tp}");
        assert_eq!(&tp[3..35], corr.simple().to_string());
        assert_eq!(WireRecord::from_bytes(&rec.to_bytes()), Some(rec));
    }

    #[test]
    fn traceparent_shape() {
        assert!(is_valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
        ));
        assert!(!is_valid_traceparent(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
    }

    #[test]
    fn the_fast_texts_match_their_format() {
        for (corr, span) in [
            (uuid::Uuid::now_v7(), 0u64),
            (uuid::Uuid::from_u128(u128::MAX), u64::MAX),
            (uuid::Uuid::nil(), 0x00f0_67aa_0ba9_02b7),
        ] {
            let span_id = if span == 0 { 1 } else { span };
            assert_eq!(
                derived_traceparent(corr, span),
                format!("00-{}-{span_id:016x}-01", corr.simple())
            );
            assert_eq!(uuid_text(&corr), corr.to_string());
        }
        assert_eq!(topic_for("t.", "a.b"), "t.a.b");
    }
}
