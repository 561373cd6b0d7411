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
                    map.insert("correlation_id".into(), correlation_id.to_string().into());
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
}
