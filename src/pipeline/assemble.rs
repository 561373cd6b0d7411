//! Worker-side assembly: a captured event becomes an envelope, is sanitized and validated,
//! and turned into a wire record. Runs on the worker (or, for a guaranteed event that found
//! the queue full, on the caller's thread just before it is spooled).

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::capture::record::{fields_into, Body, Captured, Causation, FieldValue};
use crate::config::Config;
use crate::contract::catalog::{self, EventKind};
use crate::contract::envelope::{Envelope, Meta, Source};
use crate::contract::limits::{cap, STACK_TRACE_CAP};
use crate::contract::validate::{validate_payload, Problem, ValidationError};
use crate::contract::wire::{self, WireRecord};

/// The outcome of assembling one event.
#[derive(Debug)]
pub(crate) struct Assembled {
    pub record: WireRecord,
    /// Why the envelope failed validation (it then goes to the DLQ).
    pub invalid: Option<String>,
}

const APPLICATION: &str = "omninode.logging.application.v1";
const AUDIT: &str = "omninode.logging.audit.v1";
const SECURITY: &str = "omninode.logging.security.v1";

fn kind_of(body: &Body) -> &'static EventKind {
    let t = match body {
        Body::Log { .. } => APPLICATION,
        Body::Audit(_) => AUDIT,
        Body::Security(_) => SECURITY,
        Body::Typed(e) => return e.kind(),
    };
    catalog::lookup(t).expect("built-in event types are in the catalog")
}

/// Builds the envelope of a captured event (not yet sanitized).
pub(crate) fn envelope(
    config: &Config,
    ev: Captured,
) -> (&'static EventKind, Envelope, Option<String>) {
    let kind = kind_of(&ev.body);
    let span = ev.span.as_deref();
    let explicit_corr = match &ev.body {
        Body::Typed(e) => e.correlation_id(),
        _ => None,
    };
    let correlation_id = explicit_corr
        .or(span.and_then(|s| s.correlation_id))
        .unwrap_or_else(Uuid::now_v7);
    let causation_id = match ev.causation {
        Causation::Explicit(c) => c,
        Causation::FromSpan => span.and_then(|s| s.agent_started_id),
    };
    let mut tenant_id = span
        .and_then(|s| s.tenant_id.clone())
        .unwrap_or_else(|| config.tenant_id.clone());
    let namespace = span
        .and_then(|s| s.namespace.clone())
        .unwrap_or_else(|| config.namespace.clone());

    let payload = match ev.body {
        Body::Log {
            level,
            target,
            message,
            fields,
        } => {
            let mut context = Map::new();
            let mut code = Value::Null;
            for (name, value) in &fields {
                match *name {
                    "code" => code = Value::String(value.to_text()),
                    _ => {
                        context.insert((*name).to_owned(), value.to_json());
                    }
                }
            }
            if let Some(span) = span {
                for (name, value) in &span.fields {
                    context
                        .entry((*name).to_owned())
                        .or_insert_with(|| value.to_json());
                }
            }
            let mut p = Map::new();
            p.insert("service_name".into(), config.service_name.clone().into());
            p.insert("instance_id".into(), config.instance_id.clone().into());
            p.insert("level".into(), level.as_str().into());
            p.insert("logger".into(), target.into());
            p.insert("message".into(), message.into());
            p.insert("code".into(), code);
            p.insert("context".into(), Value::Object(context));
            Value::Object(p)
        }
        Body::Audit(fields) | Body::Security(fields) => {
            let mut p = Map::new();
            fields_into(&mut p, &fields);
            if let Some(FieldValue::Str(t)) = fields
                .iter()
                .find(|(n, _)| *n == "tenant_id")
                .map(|(_, v)| v)
            {
                if !t.is_empty() {
                    tenant_id = t.clone();
                }
            }
            Value::Object(p)
        }
        Body::Typed(e) => match e.to_payload() {
            Ok(v) => v,
            Err(err) => Value::String(format!("payload could not be serialized: {err}")),
        },
    };
    let mut env = Envelope::from_payload(
        kind,
        payload,
        Meta {
            event_id: ev.event_id.unwrap_or_else(Uuid::now_v7),
            timestamp: ev.timestamp,
            tenant_id,
            namespace,
            source: Source {
                service_name: config.service_name.clone(),
                instance_id: config.instance_id.clone(),
            },
            correlation_id,
            causation_id,
            sequence: ev.sequence,
        },
    );
    if let Some(Value::String(trace)) = env.payload.get_mut("error_stack_trace") {
        cap(trace, STACK_TRACE_CAP);
    }
    let traceparent = span
        .and_then(|s| s.otel_traceparent.clone())
        .unwrap_or_else(|| {
            let span_id = span
                .map(|s| s.span_id)
                .filter(|id| *id != 0)
                .unwrap_or_else(|| env.event_id.as_u64_pair().1);
            wire::derived_traceparent(env.correlation_id, span_id)
        });
    (kind, env, Some(traceparent))
}

/// Builds, sanitizes and validates the wire record of a captured event.
pub(crate) fn assemble(config: &Config, ev: Captured) -> Assembled {
    let (kind, mut env, traceparent) = envelope(config, ev);
    let sanitizer = &config.sanitizer;
    // Ids, types, schema refs, timestamps and sequence numbers are generated here and
    // cannot hold secrets; everything that can carry caller text is sanitized.
    let mut payload = std::mem::take(&mut env.payload);
    sanitizer.sanitize_json(&mut payload);
    for text in [
        &mut env.tenant_id,
        &mut env.namespace,
        &mut env.source.service_name,
        &mut env.source.instance_id,
    ] {
        if let std::borrow::Cow::Owned(clean) = sanitizer.sanitize_str(text) {
            *text = clean;
        }
    }
    let key_field = config.partition.key_field(kind.family);
    let mut problems = validate_payload(kind, &payload, Some(key_field))
        .err()
        .unwrap_or_default();
    for (name, text) in [
        ("tenant_id", &env.tenant_id),
        ("namespace", &env.namespace),
        ("source.service_name", &env.source.service_name),
        ("source.instance_id", &env.source.instance_id),
    ] {
        if text.is_empty() {
            problems.push(ValidationError {
                path: name.into(),
                problem: Problem::Empty,
            });
        }
    }
    let mut invalid = (!problems.is_empty()).then(|| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    });
    env.payload = payload;
    let key = match config.partition.key_for(&env) {
        Ok(k) => k,
        Err(e) => {
            invalid.get_or_insert_with(|| e.to_string());
            String::new()
        }
    };
    let text = serde_json::to_string(&env).expect("an envelope always serializes");
    let record = wire::to_record(
        &env,
        kind,
        text,
        key,
        &config.topic_prefix,
        traceparent.unwrap_or_default(),
    );
    Assembled { record, invalid }
}
