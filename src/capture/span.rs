//! Per-span state: what a span contributes to the events inside it ([`SpanCtx`], shared
//! by `Arc` with its children), rebuilt when the span records new fields.

use std::sync::Arc;

use tracing::span::Id;
use tracing::Subscriber;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use uuid::Uuid;

use crate::capture::agent::AgentState;
use crate::capture::record::{FieldValue, Fields, Retired, SpanCtx};
use crate::capture::visit::field_text;

/// What the layer keeps in a span's extensions. A span the layer does not capture (see
/// [`crate::capture::layer::SpanRole`]) has none; its children and events see the context of
/// the nearest ancestor that has one.
pub(crate) struct SpanData {
    /// The context events inside the span see; its `own` fields are the span's, as last
    /// recorded.
    pub ctx: Arc<SpanCtx>,
    /// The agent execution this span is, if it is one.
    pub agent: Option<AgentState>,
}

impl SpanData {
    /// Makes `ctx` the span's context; the one it replaces is retired.
    pub fn replace_ctx(&mut self, ctx: SpanCtx) {
        self.ctx.retired.retire();
        self.ctx = Arc::new(ctx);
    }
}

/// The registry drops a span's extensions when it closes, before its id can be reused.
impl Drop for SpanData {
    fn drop(&mut self) {
        self.ctx.retired.retire();
    }
}

/// The context the layer keeps for `span` itself, if it captured it.
pub(crate) fn own_ctx<S>(span: &SpanRef<'_, S>) -> Option<Arc<SpanCtx>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.extensions().get::<SpanData>().map(|d| d.ctx.clone())
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

/// The context of a span from its own fields, its parent's context and its agent state.
/// The own fields are shared, not copied, and the parent's context is pointed at (events
/// read own fields first: inner wins). Correlation, tenant, namespace and session come from
/// the span's own fields, else are inherited; a span with no correlation of its own and
/// none to inherit (a root) starts one, a fresh UUIDv7 that all its descendants share.
pub(crate) fn build_ctx(
    own: Arc<Fields>,
    parent: Option<Arc<SpanCtx>>,
    agent: Option<&AgentState>,
    id: &Id,
) -> SpanCtx {
    let own_str = |name: &str| field_text(&own, name).filter(|s| !s.is_empty());
    let p = parent.as_deref();
    let correlation_id = own
        .iter()
        .find(|(n, _)| *n == "correlation_id")
        .and_then(|(_, v)| correlation_from(v))
        .or(p.and_then(|p| p.correlation_id))
        .or_else(|| Some(Uuid::now_v7()));
    SpanCtx {
        correlation_id,
        agent_started_id: agent
            .map(|a| a.started_id)
            .or(p.and_then(|p| p.agent_started_id)),
        tenant_id: own_str("tenant_id").or_else(|| p.and_then(|p| p.tenant_id.clone())),
        namespace: own_str("namespace").or_else(|| p.and_then(|p| p.namespace.clone())),
        session_id: own_str("session_id")
            .or_else(|| own_str("gen_ai.conversation.id"))
            .or_else(|| p.and_then(|p| p.session_id.clone())),
        span_id: id.into_u64(),
        otel_traceparent: None,
        retired: Retired::default(),
        own,
        parent,
    }
}

/// The context of the nearest ancestor of `span` that this layer captured.
pub(crate) fn parent_ctx<S>(span: &SpanRef<'_, S>) -> Option<Arc<SpanCtx>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.parent().and_then(|p| nearest_ctx(&p))
}

/// The context of `span`, or of its nearest ancestor this layer captured.
pub(crate) fn nearest_ctx<S>(span: &SpanRef<'_, S>) -> Option<Arc<SpanCtx>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // The span itself first: `scope()` would look it up in the registry a second time.
    own_ctx(span).or_else(|| {
        span.parent()
            .and_then(|p| p.scope().find_map(|s| own_ctx(&s)))
    })
}

/// Without the `opentelemetry` feature there is no OpenTelemetry context.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn has_otel_context<S>(_span: &SpanRef<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    false
}

/// Whether `tracing-opentelemetry` keeps an OpenTelemetry context for the span (whether or
/// not it is valid yet).
#[cfg(feature = "opentelemetry")]
pub(crate) fn has_otel_context<S>(span: &SpanRef<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.extensions()
        .get::<tracing_opentelemetry::OtelData>()
        .is_some()
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

    fn fields(pairs: &[(&'static str, &str)]) -> Arc<Fields> {
        Arc::new(
            pairs
                .iter()
                .map(|(n, v)| (*n, FieldValue::Str((*v).into())))
                .collect(),
        )
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
        let parent = Arc::new(build_ctx(
            fields(&[
                ("tenant_id", "acme"),
                ("namespace", "billing"),
                ("user", "alice"),
                ("correlation_id", "req-1"),
                ("session_id", "s-1"),
            ]),
            None,
            None,
            &Id::from_u64(1),
        ));
        let child = build_ctx(
            fields(&[("user", "bob"), ("namespace", ""), ("step", "2")]),
            Some(parent.clone()),
            None,
            &Id::from_u64(2),
        );
        assert_eq!(child.correlation_id, parent.correlation_id);
        assert_eq!(child.tenant_id.as_deref(), Some("acme"));
        assert_eq!(child.session_id.as_deref(), Some("s-1"));
        // An empty own value does not hide the inherited one.
        assert_eq!(child.namespace.as_deref(), Some("billing"));
        // The parent's fields are shared, not copied.
        assert!(Arc::ptr_eq(child.parent.as_ref().unwrap(), &parent));
        let names: Vec<_> = child.fields().map(|(n, v)| (*n, v.to_text())).collect();
        assert_eq!(names[0], ("user", "bob".to_owned()));
        assert!(names.contains(&("step", "2".to_owned())));
        assert!(names.contains(&("tenant_id", "acme".to_owned())));
        // Inner first: the first `user` is the child's.
        let first_user = names.iter().find(|(n, _)| *n == "user").unwrap();
        assert_eq!(first_user.1, "bob");
        assert_eq!((child.span_id, child.agent_started_id), (2, None));
    }

    #[test]
    fn a_span_with_its_own_correlation_id_starts_a_new_one() {
        let parent = Arc::new(build_ctx(
            fields(&[("correlation_id", "a")]),
            None,
            None,
            &Id::from_u64(1),
        ));
        let child = build_ctx(
            fields(&[("correlation_id", "b")]),
            Some(parent.clone()),
            None,
            &Id::from_u64(2),
        );
        assert_ne!(child.correlation_id, parent.correlation_id);
        assert!(child.correlation_id.is_some());
    }

    #[test]
    fn a_root_without_correlation_starts_one_its_children_share() {
        let root = Arc::new(build_ctx(fields(&[]), None, None, &Id::from_u64(1)));
        let id = root.correlation_id.expect("a root starts a correlation");
        assert_eq!(id.get_version_num(), 7);
        let child = build_ctx(fields(&[]), Some(root.clone()), None, &Id::from_u64(2));
        assert_eq!(child.correlation_id, Some(id));
        let other_root = build_ctx(fields(&[]), None, None, &Id::from_u64(3));
        assert_ne!(other_root.correlation_id, Some(id));
    }

    #[test]
    fn the_conversation_id_of_the_genai_conventions_is_a_session() {
        let c = build_ctx(
            fields(&[("gen_ai.conversation.id", "conv-9")]),
            None,
            None,
            &Id::from_u64(1),
        );
        assert_eq!(c.session_id.as_deref(), Some("conv-9"));
    }
}
