//! Per-span state: what a span contributes to the events inside it ([`SpanCtx`], shared
//! by `Arc` with its children), rebuilt when the span records new fields.

use std::sync::Arc;

use tracing::span::Id;
use tracing::Subscriber;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use uuid::Uuid;

use crate::capture::agent::AgentState;
use crate::capture::record::{FieldValue, Fields, SpanCtx};
use crate::capture::visit::field_text;

/// What the layer keeps in a span's extensions.
pub(crate) struct SpanData {
    /// The context events inside the span see.
    pub ctx: Arc<SpanCtx>,
    /// The span's own fields, as last recorded.
    pub own: Fields,
    /// The agent execution this span is, if it has an `agent_name` field.
    pub agent: Option<AgentState>,
}

/// A non-UUID correlation id maps to a stable name-based UUID (v5), so the same string
/// always gives the same id and correlation still works across services.
pub(crate) fn correlation_from(value: &FieldValue) -> Option<Uuid> {
    let text = value.to_text();
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(
        Uuid::parse_str(text)
            .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, text.as_bytes())),
    )
}

/// The context of a span from its own fields, its parent's context and its agent state:
/// own fields first (inner wins), then the parent's; correlation, tenant and namespace
/// from the span's own fields, else inherited.
pub(crate) fn build_ctx(
    own: &Fields,
    parent: Option<&SpanCtx>,
    agent: Option<&AgentState>,
    id: &Id,
) -> SpanCtx {
    let mut fields = own.clone();
    if let Some(p) = parent {
        for (name, value) in &p.fields {
            if !fields.iter().any(|(n, _)| n == name) {
                fields.push((name, value.clone()));
            }
        }
    }
    let own_str = |name: &str| field_text(own, name).filter(|s| !s.is_empty());
    let correlation_id = own
        .iter()
        .find(|(n, _)| *n == "correlation_id")
        .and_then(|(_, v)| correlation_from(v))
        .or(parent.and_then(|p| p.correlation_id));
    SpanCtx {
        fields,
        correlation_id,
        agent_started_id: agent
            .map(|a| a.started_id)
            .or(parent.and_then(|p| p.agent_started_id)),
        tenant_id: own_str("tenant_id").or_else(|| parent.and_then(|p| p.tenant_id.clone())),
        namespace: own_str("namespace").or_else(|| parent.and_then(|p| p.namespace.clone())),
        span_id: id.into_u64(),
        otel_traceparent: None,
    }
}

/// The context of a span's parent, if it has one this layer knows.
pub(crate) fn parent_ctx<S>(span: &SpanRef<'_, S>) -> Option<Arc<SpanCtx>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.parent()
        .and_then(|p| p.extensions().get::<SpanData>().map(|d| d.ctx.clone()))
}

/// Without the `opentelemetry` feature there is no OpenTelemetry context to read.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn otel_traceparent<S>(_span: &SpanRef<'_, S>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    None
}

/// The W3C traceparent of the span's OpenTelemetry context, when it has a valid one.
#[cfg(feature = "opentelemetry")]
pub(crate) fn otel_traceparent<S>(span: &SpanRef<'_, S>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let ext = span.extensions();
    let data = ext.get::<tracing_opentelemetry::OtelData>()?;
    let trace_id = data.trace_id()?;
    let span_id = data.span_id()?;
    if trace_id == opentelemetry::TraceId::INVALID {
        return None;
    }
    Some(format!("00-{trace_id}-{span_id}-01"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&'static str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(n, v)| (*n, FieldValue::Str((*v).to_owned())))
            .collect()
    }

    #[test]
    fn correlation_ids_parse_or_map_to_a_stable_uuid() {
        let uuid = "0190f0a0-0000-7000-8000-000000000001";
        let s = |t: &str| correlation_from(&FieldValue::Str(t.into()));
        assert_eq!(s(uuid), Some(Uuid::parse_str(uuid).unwrap()));
        assert_eq!(s(" req-42 "), s("req-42"));
        assert_ne!(s("req-42"), s("req-43"));
        assert_eq!(s("req-42").unwrap().get_version_num(), 5);
        assert_eq!(s("  "), None);
        assert_eq!(correlation_from(&FieldValue::U64(7)), s("7"));
    }

    #[test]
    fn a_child_inherits_and_its_own_fields_win() {
        let parent = build_ctx(
            &fields(&[
                ("tenant_id", "acme"),
                ("namespace", "billing"),
                ("user", "alice"),
                ("correlation_id", "req-1"),
            ]),
            None,
            None,
            &Id::from_u64(1),
        );
        let child = build_ctx(
            &fields(&[("user", "bob"), ("namespace", ""), ("step", "2")]),
            Some(&parent),
            None,
            &Id::from_u64(2),
        );
        assert_eq!(child.correlation_id, parent.correlation_id);
        assert_eq!(child.tenant_id.as_deref(), Some("acme"));
        // An empty own value does not hide the inherited one.
        assert_eq!(child.namespace.as_deref(), Some("billing"));
        let names: Vec<_> = child
            .fields
            .iter()
            .map(|(n, v)| (*n, v.to_text()))
            .collect();
        assert_eq!(names[0], ("user", "bob".to_owned()));
        assert!(names.contains(&("step", "2".to_owned())));
        assert!(names.contains(&("tenant_id", "acme".to_owned())));
        assert_eq!(names.iter().filter(|(n, _)| *n == "user").count(), 1);
        assert_eq!((child.span_id, child.agent_started_id), (2, None));
    }

    #[test]
    fn a_span_with_its_own_correlation_id_starts_a_new_one() {
        let parent = build_ctx(
            &fields(&[("correlation_id", "a")]),
            None,
            None,
            &Id::from_u64(1),
        );
        let child = build_ctx(
            &fields(&[("correlation_id", "b")]),
            Some(&parent),
            None,
            &Id::from_u64(2),
        );
        assert_ne!(child.correlation_id, parent.correlation_id);
        assert!(child.correlation_id.is_some());
    }
}
