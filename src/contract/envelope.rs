//! The event envelope of SPEC §2 and its construction from a payload.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::contract::catalog::EventKind;
use crate::contract::events::Event;
use crate::contract::timestamp::Timestamp;

/// Who produced an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Source {
    /// The service name (`OMNINODE_SERVICE_NAME`).
    pub service_name: String,
    /// The instance id (`OMNINODE_INSTANCE_ID`).
    pub instance_id: String,
}

/// The JSON document written as the Kafka record value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// UUIDv7 of this event.
    pub event_id: Uuid,
    /// The catalog event type (never carries the topic prefix).
    pub event_type: String,
    /// `schemas/<event_type>.json`.
    pub schema_ref: String,
    /// When the event was captured.
    pub timestamp: Timestamp,
    /// Tenant.
    pub tenant_id: String,
    /// Namespace.
    pub namespace: String,
    /// Producer identity.
    pub source: Source,
    /// Correlation id, inherited down the span tree.
    pub correlation_id: Uuid,
    /// The `event_id` of the event that caused this one.
    pub causation_id: Option<Uuid>,
    /// Per-instance sequence number, from 1.
    pub sequence: u64,
    /// The event's payload.
    pub payload: Value,
}

/// Everything in an envelope except the payload.
#[derive(Debug, Clone)]
pub struct Meta {
    /// See [`Envelope::event_id`].
    pub event_id: Uuid,
    /// See [`Envelope::timestamp`].
    pub timestamp: Timestamp,
    /// See [`Envelope::tenant_id`].
    pub tenant_id: String,
    /// See [`Envelope::namespace`].
    pub namespace: String,
    /// See [`Envelope::source`].
    pub source: Source,
    /// See [`Envelope::correlation_id`].
    pub correlation_id: Uuid,
    /// See [`Envelope::causation_id`].
    pub causation_id: Option<Uuid>,
    /// See [`Envelope::sequence`].
    pub sequence: u64,
}

impl Envelope {
    /// Wraps a typed event.
    pub fn new<E: Event>(event: &E, meta: Meta) -> Result<Envelope, serde_json::Error> {
        Ok(Envelope::from_payload(
            E::kind(),
            serde_json::to_value(event)?,
            meta,
        ))
    }

    /// Wraps a JSON payload, filling what the producer may leave out: the payload's
    /// `correlation_id`, its time field (`started_at`, `timestamp`, ...), `tenant_id` of
    /// audit and security events, and `service_name`/`instance_id` of application logs.
    /// A payload that sets `correlation_id` or `tenant_id` itself also sets the envelope's.
    pub fn from_payload(kind: &'static EventKind, mut payload: Value, meta: Meta) -> Envelope {
        let mut correlation_id = meta.correlation_id;
        let mut tenant_id = meta.tenant_id;
        if let Value::Object(map) = &mut payload {
            let requires = |f: &str| kind.fields.iter().any(|(n, _)| *n == f);
            match map.get("correlation_id").and_then(Value::as_str) {
                Some(s) => {
                    if let Ok(id) = Uuid::parse_str(s) {
                        correlation_id = id;
                    }
                }
                None if requires("correlation_id") => {
                    let text = crate::contract::wire::uuid_text(&correlation_id);
                    map.insert("correlation_id".into(), text.into());
                }
                None => {}
            }
            if requires("tenant_id") {
                match map.get("tenant_id").and_then(Value::as_str) {
                    Some(t) if !t.is_empty() => tenant_id = t.to_owned(),
                    _ => {
                        map.insert("tenant_id".into(), tenant_id.clone().into());
                    }
                }
            }
            if let Some(field) = kind.time_field {
                if map.get(field).is_none_or(Value::is_null) {
                    map.insert(field.into(), meta.timestamp.to_string().into());
                }
            }
            for (field, value) in [
                ("service_name", &meta.source.service_name),
                ("instance_id", &meta.source.instance_id),
            ] {
                let unset = map
                    .get(field)
                    .is_none_or(|v| v.is_null() || v.as_str() == Some(""));
                if requires(field) && unset {
                    map.insert(field.into(), value.clone().into());
                }
            }
        }
        Envelope {
            event_id: meta.event_id,
            event_type: kind.event_type.to_owned(),
            schema_ref: kind.schema_ref(),
            timestamp: meta.timestamp,
            tenant_id,
            namespace: meta.namespace,
            source: meta.source,
            correlation_id,
            causation_id: meta.causation_id,
            sequence: meta.sequence,
            payload,
        }
    }

    /// The JSON text of this envelope, byte for byte what `serde_json::to_string` writes
    /// for it, written without the serde machinery for the fixed fields (ids and the
    /// timestamp are formatted straight into the buffer): the worker writes one per event.
    pub(crate) fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(512);
        let text = |out: &mut Vec<u8>, s: &str| {
            // Writing a `str` into a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut *out, s);
        };
        let id = |out: &mut Vec<u8>, id: &Uuid| {
            out.push(b'"');
            out.extend_from_slice(
                id.hyphenated()
                    .encode_lower(&mut Uuid::encode_buffer())
                    .as_bytes(),
            );
            out.push(b'"');
        };
        out.extend_from_slice(b"{\"event_id\":");
        id(&mut out, &self.event_id);
        out.extend_from_slice(b",\"event_type\":");
        text(&mut out, &self.event_type);
        out.extend_from_slice(b",\"schema_ref\":");
        text(&mut out, &self.schema_ref);
        out.extend_from_slice(b",\"timestamp\":\"");
        self.timestamp.write_to(&mut out);
        out.extend_from_slice(b"\",\"tenant_id\":");
        text(&mut out, &self.tenant_id);
        out.extend_from_slice(b",\"namespace\":");
        text(&mut out, &self.namespace);
        out.extend_from_slice(b",\"source\":{\"service_name\":");
        text(&mut out, &self.source.service_name);
        out.extend_from_slice(b",\"instance_id\":");
        text(&mut out, &self.source.instance_id);
        out.extend_from_slice(b"},\"correlation_id\":");
        id(&mut out, &self.correlation_id);
        out.extend_from_slice(b",\"causation_id\":");
        match &self.causation_id {
            Some(c) => id(&mut out, c),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"sequence\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.sequence).as_bytes());
        out.extend_from_slice(b",\"payload\":");
        // A `Value` always serializes (its map keys are strings).
        let _ = serde_json::to_writer(&mut out, &self.payload);
        out.push(b'}');
        // Every piece above is UTF-8; the lossy path is never taken.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The catalog entry of this envelope's type.
    pub fn kind(&self) -> Option<&'static EventKind> {
        crate::contract::catalog::lookup(&self.event_type)
    }
}

#[cfg(test)]
impl Meta {
    /// Test metadata: tenant `acme`, namespace `prod`, service `billing`, sequence 7.
    pub(crate) fn sample(correlation_id: Uuid) -> Meta {
        Meta {
            event_id: Uuid::now_v7(),
            timestamp: Timestamp::now(),
            tenant_id: "acme".into(),
            namespace: "prod".into(),
            source: Source {
                service_name: "billing".into(),
                instance_id: "i-1".into(),
            },
            correlation_id,
            causation_id: None,
            sequence: 7,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::events::{AuditEvent, QualityGatePassed};

    fn meta() -> Meta {
        Meta::sample(Uuid::now_v7())
    }

    #[test]
    fn fills_correlation_and_time_from_meta() {
        let m = meta();
        let e = Envelope::new(
            &QualityGatePassed {
                gate_name: "g".into(),
                ..Default::default()
            },
            m.clone(),
        )
        .unwrap();
        assert_eq!(e.payload["correlation_id"], m.correlation_id.to_string());
        assert_eq!(e.payload["passed_at"], m.timestamp.to_string());
        assert_eq!(
            e.schema_ref,
            "schemas/omninode.agent.quality.gate.passed.v1.json"
        );
    }

    #[test]
    fn explicit_correlation_and_tenant_win() {
        let id = Uuid::now_v7();
        let e = Envelope::new(
            &QualityGatePassed {
                correlation_id: Some(id),
                ..Default::default()
            },
            meta(),
        )
        .unwrap();
        assert_eq!(e.correlation_id, id);
        let a = Envelope::new(
            &AuditEvent {
                tenant_id: Some("globex".into()),
                ..Default::default()
            },
            meta(),
        )
        .unwrap();
        assert_eq!(a.tenant_id, "globex");
        let b = Envelope::new(&AuditEvent::default(), meta()).unwrap();
        assert_eq!(b.payload["tenant_id"], "acme");
    }

    proptest::proptest! {
        /// The worker's writer and serde's derive give the same bytes, whatever the text
        /// (quotes, control characters, any Unicode), instant, sequence and payload.
        #[test]
        fn to_json_writes_what_serde_writes(
            texts in proptest::collection::vec(".*", 6),
            micros in proptest::num::i64::ANY,
            sequence in proptest::num::u64::ANY,
            ids in proptest::array::uniform3(proptest::num::u128::ANY),
            caused in proptest::bool::ANY,
            number in proptest::num::f64::NORMAL,
        ) {
            let payload = serde_json::json!({
                "message": texts[0], texts[1].clone(): {"n": number, "list": [texts[2], null, true]},
            });
            let e = Envelope {
                event_id: Uuid::from_u128(ids[0]),
                event_type: texts[3].clone(),
                schema_ref: "schemas/x.json".into(),
                timestamp: Timestamp::from_micros(micros),
                tenant_id: texts[4].clone(),
                namespace: texts[5].clone(),
                source: Source { service_name: texts[2].clone(), instance_id: texts[0].clone() },
                correlation_id: Uuid::from_u128(ids[1]),
                causation_id: caused.then(|| Uuid::from_u128(ids[2])),
                sequence,
                payload,
            };
            proptest::prop_assert_eq!(e.to_json(), serde_json::to_string(&e).unwrap());
        }
    }
}
