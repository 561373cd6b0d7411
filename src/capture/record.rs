//! The compact, owned capture of an event made on the caller's thread. No JSON, no
//! sanitizing, no validation here: those run on the worker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use compact_str::CompactString;
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use crate::contract::events::AnyEvent;
use crate::contract::timestamp::Timestamp;

/// A field value as recorded by tracing. Text of up to 24 bytes is stored inline (no
/// allocation on the caller's thread, nothing for the worker to free).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue {
    Str(CompactString),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl FieldValue {
    pub fn to_json(&self) -> Value {
        match self {
            FieldValue::Str(s) => Value::String(s.to_string()),
            FieldValue::I64(n) => Value::Number((*n).into()),
            FieldValue::U64(n) => Value::Number((*n).into()),
            FieldValue::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            FieldValue::Bool(b) => Value::Bool(*b),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::I64(n) => Some(*n as f64),
            FieldValue::U64(n) => Some(*n as f64),
            FieldValue::F64(f) => Some(*f),
            FieldValue::Str(s) => s.parse().ok(),
            FieldValue::Bool(_) => None,
        }
    }

    pub fn to_text(&self) -> String {
        match self {
            FieldValue::Str(s) => s.to_string(),
            FieldValue::I64(n) => n.to_string(),
            FieldValue::U64(n) => n.to_string(),
            FieldValue::F64(f) => f.to_string(),
            FieldValue::Bool(b) => b.to_string(),
        }
    }
}

/// Fields stored inline in a [`Fields`]: most events have no more, so their capture
/// allocates nothing on the caller's thread (and the worker frees nothing the caller's
/// allocator arena has to take back).
pub(crate) const INLINE_FIELDS: usize = 6;

/// Recorded fields, in recording order.
pub(crate) type Fields = smallvec::SmallVec<[(&'static str, FieldValue); INLINE_FIELDS]>;

/// Recorded fields, however they are stored.
pub(crate) type FieldSlice = [(&'static str, FieldValue)];

/// Inserts `fields` into `map` under their names (a dotted name stays one key).
pub(crate) fn fields_into(map: &mut Map<String, Value>, fields: &FieldSlice) {
    for (name, value) in fields {
        map.insert((*name).to_owned(), value.to_json());
    }
}

/// Longest value of a span field the layer keeps, in bytes (64 KiB). A longer value (a
/// whole prompt or document recorded on a span) is not copied at all: it is replaced by the
/// marker `[omitted: <n> bytes]`. Never a cut prefix, which could ship half of a secret that
/// the worker's sanitizer would no longer recognise (sanitizing runs on the worker, after
/// capture). Event fields are not capped here: they are copied once, and the worker's size
/// limits apply to them.
pub(crate) const SPAN_FIELD_CAP: usize = 64 * 1024;

/// Set once a [`SpanCtx`] is no longer its span's context: the span recorded new fields (a
/// new context replaced it) or closed (its id may be reused). Events already captured and
/// child spans keep using it; only a thread's cached answer for the span
/// (`capture::layer`'s `LastCtx`) checks it. A clone is a new context, not retired.
#[derive(Debug, Default)]
pub(crate) struct Retired(AtomicBool);

impl Clone for Retired {
    fn clone(&self) -> Self {
        Retired::default()
    }
}

impl Retired {
    pub fn retire(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_retired(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What a span contributes to the events inside it; shared by all its children.
///
/// A span's own fields are stored once ([`SpanCtx::own`]) and its children point at it
/// ([`SpanCtx::parent`]) instead of copying them: creating a child costs one `Arc` clone,
/// whatever the depth and size of the tree above it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpanCtx {
    /// This span's own fields, as last recorded.
    pub own: Arc<Fields>,
    /// The context of the nearest enclosing span the layer captured.
    pub parent: Option<Arc<SpanCtx>>,
    pub correlation_id: Option<Uuid>,
    /// The `execution.started` event id of the nearest enclosing agent span.
    pub agent_started_id: Option<Uuid>,
    pub tenant_id: Option<String>,
    pub namespace: Option<String>,
    /// The session of the span (its `session_id` or `gen_ai.conversation.id`), else
    /// inherited.
    pub session_id: Option<String>,
    /// tracing span id of the span itself, for the derived traceparent.
    pub span_id: u64,
    /// W3C traceparent from OpenTelemetry, when the feature is on and a context is active.
    pub otel_traceparent: Option<String>,
    /// Whether this is no longer its span's context.
    pub retired: Retired,
}

impl SpanCtx {
    /// The fields of this span, then of its ancestors, innermost first. A name may occur more
    /// than once: the first occurrence (the innermost span's) wins.
    pub fn fields(&self) -> impl Iterator<Item = &(&'static str, FieldValue)> {
        std::iter::successors(Some(self), |c| c.parent.as_deref()).flat_map(|c| c.own.iter())
    }
}

/// The body of a captured event.
#[derive(Debug)]
pub(crate) enum Body {
    /// An ordinary tracing event.
    Log {
        level: tracing::Level,
        target: &'static str,
        message: CompactString,
        fields: Fields,
    },
    /// `audit!`.
    Audit(Fields),
    /// `security!`.
    Security(Fields),
    /// A typed catalog event (from `emit` or the agent lifecycle).
    Typed {
        event: Box<dyn AnyEvent>,
        /// Preassigned event id (agent `execution.started`, whose id children point at).
        event_id: Option<Uuid>,
        /// Where the causation id comes from.
        causation: Causation,
    },
}

impl Body {
    /// A typed event with its own id and the causation of its span.
    pub fn typed(event: Box<dyn AnyEvent>) -> Body {
        Body::Typed {
            event,
            event_id: None,
            causation: Causation::FromSpan,
        }
    }
}

/// How a typed event's `causation_id` is chosen (every other event takes its span's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Causation {
    /// The `execution.started` of the nearest enclosing agent span, if any.
    FromSpan,
    /// Set by the layer (an agent's `started` points at its parent's, its end at its own).
    Explicit(Option<Uuid>),
}

/// One captured event on its way to the worker. Every push copies it into the queue (and
/// on the caller's thread it is built once, in place): what only typed events need lives in
/// [`Body::Typed`], not here.
#[derive(Debug)]
pub(crate) struct Captured {
    pub sequence: u64,
    pub timestamp: Timestamp,
    pub span: Option<Arc<SpanCtx>>,
    pub body: Body,
}

impl Captured {
    /// Whether the event must not be dropped under overload: decided by its family
    /// ([`crate::contract::catalog::Family::is_guaranteed`]), so an application log sent with
    /// [`crate::emit`] is droppable like one from `info!`.
    pub fn is_guaranteed(&self) -> bool {
        match &self.body {
            Body::Log { .. } => false,
            Body::Audit(_) | Body::Security(_) => true,
            Body::Typed { event, .. } => event.kind().is_guaranteed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::events::{ApplicationLog, AuditEvent, QualityGatePassed};

    fn captured(body: Body) -> Captured {
        Captured {
            sequence: 1,
            timestamp: Timestamp::now(),
            span: None,
            body,
        }
    }

    #[test]
    fn guarantee_follows_the_family() {
        let log = Body::Log {
            level: tracing::Level::INFO,
            target: "app",
            message: "m".into(),
            fields: Fields::new(),
        };
        assert!(!captured(log).is_guaranteed());
        assert!(!captured(Body::typed(Box::new(ApplicationLog::default()))).is_guaranteed());
        assert!(captured(Body::typed(Box::new(AuditEvent::default()))).is_guaranteed());
        assert!(captured(Body::typed(Box::new(QualityGatePassed::default()))).is_guaranteed());
        assert!(captured(Body::Audit(Default::default())).is_guaranteed());
        assert!(captured(Body::Security(Default::default())).is_guaranteed());
    }

    /// The queue and the overflow list hold their slots from the start (16 384 each by
    /// default), so a captured event's size is part of the pipeline's fixed memory, and
    /// every push copies it: 6 inline fields keep it at 320 bytes (10 MiB for both lists at
    /// the defaults).
    #[test]
    fn a_captured_event_stays_small() {
        let size = std::mem::size_of::<Captured>();
        assert!(size <= 320, "Captured is {size} bytes");
    }
}
