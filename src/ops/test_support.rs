//! Records built the way the pipeline builds them, for the unit tests of `ops`.

use serde_json::Value;

use crate::contract::envelope::{Envelope, Meta};
use crate::contract::events::{AuditEvent, Event as _, Outcome};
use crate::contract::wire::{derived_traceparent, to_record, WireRecord};

/// The record of an audit event of `billing/i-1` (tenant `acme`) with `sequence`, under
/// `prefix`; `edit` may change the envelope's JSON (not the headers) first.
pub(crate) fn audit_wire(prefix: &str, sequence: u64, edit: impl Fn(&mut Value)) -> WireRecord {
    let mut meta = Meta::sample(uuid::Uuid::now_v7());
    meta.sequence = sequence;
    let env = Envelope::new(
        &AuditEvent {
            action: "user.delete".into(),
            actor: "alice".into(),
            resource: "user/1".into(),
            outcome: Outcome::Success,
            ..Default::default()
        },
        meta,
    )
    .expect("an audit event serializes");
    let mut value = serde_json::to_value(&env).expect("an envelope serializes");
    edit(&mut value);
    to_record(
        &env,
        AuditEvent::kind(),
        value.to_string(),
        "acme".into(),
        prefix,
        derived_traceparent(env.correlation_id, 7),
    )
}
