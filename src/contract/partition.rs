//! Partition-key policy: which payload field becomes the Kafka record key, per family.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::contract::catalog::Family;
use crate::contract::envelope::Envelope;
use crate::contract::validate::{Problem, ValidationError};

/// Chooses the record key of each event. Defaults follow SPEC §1 (`service_name` for
/// application logs, `tenant_id` for audit and security, `correlation_id` for the rest);
/// each family can be pointed at another payload field.
#[derive(Debug, Clone, Default)]
pub struct PartitionPolicy {
    overrides: BTreeMap<Family, String>,
}

impl PartitionPolicy {
    /// The SPEC §1 defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys `family` by `field` instead of its default.
    pub fn with_key_field(mut self, family: Family, field: impl Into<String>) -> Self {
        self.overrides.insert(family, field.into());
        self
    }

    /// The payload field that keys `family`.
    pub fn key_field(&self, family: Family) -> &str {
        self.overrides
            .get(&family)
            .map(String::as_str)
            .unwrap_or(family.default_key_field())
    }

    /// The record key of an envelope: the UTF-8 text of its partition-key field. The
    /// envelope's own `correlation_id`, `tenant_id` and `source.service_name` stand in when
    /// the payload lacks a field of that name.
    pub fn key_for(&self, envelope: &Envelope) -> Result<String, ValidationError> {
        let family = envelope
            .kind()
            .map(|k| k.family)
            .unwrap_or(Family::Application);
        let field = self.key_field(family);
        let from_payload = match envelope.payload.get(field) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let from_envelope = || match field {
            "correlation_id" => Some(crate::contract::wire::uuid_text(&envelope.correlation_id)),
            "tenant_id" => Some(envelope.tenant_id.clone()),
            "service_name" => Some(envelope.source.service_name.clone()),
            _ => None,
        };
        from_payload
            .or_else(|| from_envelope().filter(|s| !s.is_empty()))
            .ok_or_else(|| ValidationError {
                path: format!("payload.{field}"),
                problem: Problem::NoPartitionKey(field.to_owned()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::envelope::Meta;
    use crate::contract::events::{ApplicationLog, AuditEvent, RoutingRequested};
    use uuid::Uuid;

    #[test]
    fn defaults_per_family() {
        let corr = Uuid::now_v7();
        let policy = PartitionPolicy::new();
        let app = Envelope::new(&ApplicationLog::default(), Meta::sample(corr)).unwrap();
        let audit = Envelope::new(&AuditEvent::default(), Meta::sample(corr)).unwrap();
        let routing = Envelope::new(&RoutingRequested::default(), Meta::sample(corr)).unwrap();
        assert_eq!(policy.key_for(&app).unwrap(), "billing");
        assert_eq!(policy.key_for(&audit).unwrap(), "acme");
        assert_eq!(policy.key_for(&routing).unwrap(), corr.to_string());
    }

    #[test]
    fn override_and_missing_field() {
        let corr = Uuid::now_v7();
        let audit = Envelope::new(
            &AuditEvent {
                actor: "alice".into(),
                ..Default::default()
            },
            Meta::sample(corr),
        )
        .unwrap();
        let by_actor = PartitionPolicy::new().with_key_field(Family::Audit, "actor");
        assert_eq!(by_actor.key_for(&audit).unwrap(), "alice");
        let by_missing = PartitionPolicy::new().with_key_field(Family::Audit, "nope");
        let e = by_missing.key_for(&audit).unwrap_err();
        assert_eq!(e.path, "payload.nope");
    }
}
