//! Worker-side assembly: a captured event becomes an envelope, is sanitized and validated,
//! and turned into a wire record. Runs on the worker (or, for a guaranteed event that found
//! the queue full, on the caller's thread just before it is spooled).

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::capture::record::{fields_into, Body, Captured, Causation};
use crate::capture::visit::field_text;
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

/// The catalog entry a captured event becomes.
pub(crate) fn kind_of(body: &Body) -> &'static EventKind {
    let t = match body {
        Body::Log { .. } => APPLICATION,
        Body::Audit(_) => AUDIT,
        Body::Security(_) => SECURITY,
        Body::Typed { event, .. } => return event.kind(),
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
        Body::Typed { event, .. } => event.correlation_id(),
        _ => None,
    };
    let correlation_id = explicit_corr
        .or(span.and_then(|s| s.correlation_id))
        .unwrap_or_else(Uuid::now_v7);
    let (event_id, causation_id) = match &ev.body {
        Body::Typed {
            event_id,
            causation: Causation::Explicit(c),
            ..
        } => (*event_id, *c),
        Body::Typed { event_id, .. } => (*event_id, span.and_then(|s| s.agent_started_id)),
        _ => (None, span.and_then(|s| s.agent_started_id)),
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
                for (name, value) in span.fields() {
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
            p.insert("message".into(), message.into_string().into());
            p.insert("code".into(), code);
            p.insert("context".into(), Value::Object(context));
            Value::Object(p)
        }
        Body::Audit(fields) | Body::Security(fields) => {
            let mut p = Map::new();
            fields_into(&mut p, &fields);
            // A tenant is never guessed: any scalar (`tenant_id = 42`) is the tenant, as
            // its string form, in the envelope, the payload, the key and `x-tenant`.
            if let Some(t) = field_text(&fields, "tenant_id").filter(|t| !t.is_empty()) {
                p.insert("tenant_id".into(), Value::String(t.clone()));
                tenant_id = t;
            }
            Value::Object(p)
        }
        Body::Typed { event, .. } => match event.to_payload() {
            Ok(v) => v,
            Err(err) => Value::String(format!("payload could not be serialized: {err}")),
        },
    };
    let env = Envelope::from_payload(
        kind,
        payload,
        Meta {
            event_id: event_id.unwrap_or_else(Uuid::now_v7),
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
    // Capped after sanitizing: a secret cut at the cap would no longer match its rule and
    // ship half-visible; a cut marker shows nothing.
    if let Some(Value::String(trace)) = payload.get_mut("error_stack_trace") {
        cap(trace, STACK_TRACE_CAP);
    }
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
    let text = env.to_json();
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::capture::record::{FieldValue, SpanCtx};
    use crate::contract::events::QualityGatePassed;
    use crate::contract::timestamp::Timestamp;
    use crate::contract::wire::header;

    fn config() -> Config {
        crate::builder()
            .bootstrap_servers("localhost:9092")
            .service_name("billing")
            .instance_id("billing-1")
            .tenant_id("acme")
            .topic_prefix("t.")
            .ignore_env()
            .resolve()
            .expect("a valid configuration")
    }

    fn text(name: &'static str, v: &str) -> (&'static str, FieldValue) {
        (name, FieldValue::Str(v.into()))
    }

    fn captured(body: Body, span: Option<SpanCtx>) -> Captured {
        Captured {
            sequence: 7,
            timestamp: Timestamp::now(),
            span: span.map(Arc::new),
            body,
        }
    }

    fn value(a: &Assembled) -> Value {
        serde_json::from_str(&a.record.value).expect("the value is JSON")
    }

    #[test]
    fn a_log_takes_its_code_apart_and_event_fields_win_over_span_fields() {
        let span = SpanCtx {
            own: Arc::new(smallvec::smallvec![
                text("user", "span-user"),
                text("region", "eu")
            ]),
            correlation_id: Some(Uuid::now_v7()),
            agent_started_id: Some(Uuid::now_v7()),
            tenant_id: Some("globex".into()),
            span_id: 42,
            ..SpanCtx::default()
        };
        let corr = span.correlation_id.unwrap();
        let started = span.agent_started_id.unwrap();
        let body = Body::Log {
            level: tracing::Level::WARN,
            target: "billing::db",
            message: "slow query".into(),
            fields: smallvec::smallvec![text("code", "DB_SLOW"), text("user", "event-user")],
        };
        let a = assemble(&config(), captured(body, Some(span)));
        assert_eq!(a.invalid, None);
        assert_eq!(a.record.topic, "t.omninode.logging.application.v1");
        assert_eq!(a.record.key, "billing");
        let v = value(&a);
        let p = &v["payload"];
        assert_eq!(
            (p["level"].as_str(), p["logger"].as_str()),
            (Some("WARN"), Some("billing::db"))
        );
        assert_eq!(p["code"], "DB_SLOW");
        assert_eq!(
            p["context"],
            serde_json::json!({ "user": "event-user", "region": "eu" })
        );
        assert_eq!(v["tenant_id"], "globex");
        assert_eq!(v["correlation_id"], corr.to_string());
        assert_eq!(v["causation_id"], started.to_string());
        assert_eq!(v["sequence"], 7);
        assert_eq!(a.record.header(header::SEQUENCE), Some("7"));
        let tp = a.record.header(header::TRACEPARENT).unwrap();
        assert!(tp.ends_with(&format!("{:016x}-01", 42)), "{tp}");
    }

    #[test]
    fn an_audit_tenant_field_files_the_event_under_that_tenant() {
        let body = Body::Audit(smallvec::smallvec![
            text("tenant_id", "initech"),
            text("action", "order.refund"),
            text("actor", "alice"),
            text("resource", "order/42"),
            text("outcome", "success"),
        ]);
        let a = assemble(&config(), captured(body, None));
        assert_eq!(a.invalid, None);
        assert_eq!(
            (value(&a)["tenant_id"].as_str(), a.record.key.as_str()),
            (Some("initech"), "initech")
        );
        assert_eq!(a.record.header(header::TENANT), Some("initech"));
        // The time field is filled from the capture time.
        assert!(value(&a)["payload"]["timestamp"].is_string());
    }

    #[test]
    fn an_integer_tenant_is_the_tenant_as_text_everywhere() {
        for tenant in [
            FieldValue::I64(42),
            FieldValue::U64(42),
            FieldValue::Str("42".into()),
        ] {
            let body = Body::Security(smallvec::smallvec![
                ("tenant_id", tenant.clone()),
                text("event_type", "permission_check"),
                text("user_id", "u-7"),
                text("resource", "billing"),
                text("decision", "deny"),
            ]);
            let a = assemble(&config(), captured(body, None));
            assert_eq!(a.invalid, None, "{tenant:?}");
            let v = value(&a);
            assert_eq!(v["tenant_id"], "42", "{tenant:?}");
            assert_eq!(v["payload"]["tenant_id"], "42", "{tenant:?}");
            assert_eq!(a.record.key, "42");
            assert_eq!(a.record.header(header::TENANT), Some("42"));
        }
    }

    #[test]
    fn a_secret_at_the_stack_trace_cap_is_redacted_before_the_cut() {
        let secret = "postgres://admin:Hunter2Secret99@db.internal:5432/app";
        // The URL starts 20 bytes before the cap: cut first, it would no longer match.
        let trace = format!("{} {secret} at main.rs:1", "x".repeat(STACK_TRACE_CAP - 21));
        let failed = crate::contract::events::AgentExecutionFailed {
            agent_name: "coder".into(),
            error_message: "boom".into(),
            error_type: "db".into(),
            error_stack_trace: Some(trace),
            ..Default::default()
        };
        let a = assemble(&config(), captured(Body::typed(Box::new(failed)), None));
        let kept = value(&a)["payload"]["error_stack_trace"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(kept.len() <= STACK_TRACE_CAP, "{}", kept.len());
        let tail = &kept[STACK_TRACE_CAP - 40..];
        assert!(!tail.contains("Hun"), "the password shows: {tail}");
    }

    #[test]
    fn secrets_are_redacted_and_an_invalid_event_says_why() {
        let body = Body::Audit(smallvec::smallvec![
            text("action", "login"),
            text("actor", ""),
            text("resource", "db"),
            text("outcome", "success"),
            text("note", "password=hunter2hunter2"),
        ]);
        let a = assemble(&config(), captured(body, None));
        assert!(!a.record.value.contains("hunter2"), "{}", a.record.value);
        let why = a.invalid.expect("an empty actor is invalid");
        assert!(why.contains("actor"), "{why}");
    }

    #[test]
    fn a_typed_event_keeps_its_payload_and_caps_a_stack_trace() {
        let gate = QualityGatePassed {
            gate_name: "unit-tests".into(),
            score: 0.97,
            threshold: 0.9,
            ..Default::default()
        };
        let a = assemble(&config(), captured(Body::typed(Box::new(gate)), None));
        assert_eq!(a.invalid, None);
        assert_eq!(value(&a)["payload"]["gate_name"], "unit-tests");
        assert_eq!(a.record.topic, "t.omninode.agent.quality.gate.passed.v1");

        let failed = crate::contract::events::AgentExecutionFailed {
            agent_name: "coder".into(),
            error_message: "boom".into(),
            error_type: "panic".into(),
            error_stack_trace: Some("frame\n".repeat(4000)),
            ..Default::default()
        };
        let a = assemble(&config(), captured(Body::typed(Box::new(failed)), None));
        let trace = value(&a)["payload"]["error_stack_trace"]
            .as_str()
            .unwrap()
            .len();
        assert!(trace <= STACK_TRACE_CAP, "{trace}");
    }
}
