//! The field visitor: records a span's or event's fields into a compact list, keeping the
//! `message` apart. Values are copied as tracing hands them over; nothing is formatted as
//! JSON here. Two kinds of value are never copied: the GenAI contents the OpenTelemetry
//! conventions flag as sensitive ([`SENSITIVE_GENAI_FIELDS`]) and, on spans, values over
//! [`SPAN_FIELD_CAP`]; each is replaced by a marker.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};

use compact_str::{format_compact, CompactString};

use crate::capture::record::{FieldSlice, FieldValue, Fields, SPAN_FIELD_CAP};

/// GenAI fields that may hold prompts, tool arguments or results (opt-in and "possibly
/// sensitive" in the OpenTelemetry GenAI conventions). Their values never leave the caller's
/// thread: the field ships as [`SENSITIVE_MARKER`].
pub(crate) const SENSITIVE_GENAI_FIELDS: &[&str] = &[
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
];

/// What a sensitive GenAI field ships as.
pub(crate) const SENSITIVE_MARKER: &str = "[omitted: sensitive gen_ai content]";

fn is_sensitive(name: &str) -> bool {
    name.starts_with("gen_ai.") && SENSITIVE_GENAI_FIELDS.contains(&name)
}

/// `value`'s `Debug` text. Written straight into the string: `format_compact!` formats
/// through one more `Display` layer, and this runs for every event's message.
fn debug_text(value: &dyn fmt::Debug) -> CompactString {
    let mut text = CompactString::const_new("");
    let _ = write!(text, "{value:?}");
    text
}

/// The marker that replaces a span field value over [`SPAN_FIELD_CAP`].
fn omitted(len: usize) -> FieldValue {
    FieldValue::Str(format_compact!("[omitted: {len} bytes]"))
}

/// Records fields into `fields`; `message` goes to `message`.
pub(crate) struct Collector<'a> {
    pub fields: &'a mut Fields,
    pub message: Option<CompactString>,
    /// Values over this many bytes are replaced by a marker (spans only).
    cap: Option<usize>,
}

impl<'a> Collector<'a> {
    /// A collector for an event's fields (no cap).
    pub fn new(fields: &'a mut Fields) -> Self {
        Collector {
            fields,
            message: None,
            cap: None,
        }
    }

    /// A collector for a span's fields: values over [`SPAN_FIELD_CAP`] become a marker.
    pub fn for_span(fields: &'a mut Fields) -> Self {
        Collector {
            fields,
            message: None,
            cap: Some(SPAN_FIELD_CAP),
        }
    }

    #[inline(always)]
    fn push(&mut self, field: &Field, value: FieldValue) {
        self.fields.push((field.name(), value));
    }

    /// Pushes a text value, unless the field is sensitive or the text over the cap.
    #[inline(always)]
    fn push_text(&mut self, field: &Field, text: &str) {
        let value = if is_sensitive(field.name()) {
            FieldValue::Str(SENSITIVE_MARKER.into())
        } else if self.cap.is_some_and(|cap| text.len() > cap) {
            omitted(text.len())
        } else {
            FieldValue::Str(text.into())
        };
        self.push(field, value);
    }
}

/// A `fmt::Write` that keeps at most `cap` bytes and fails once more are written, so that a
/// huge `Debug` value is not formatted in full only to be thrown away.
struct Capped {
    text: String,
    cap: usize,
    over: bool,
}

impl fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.text.len() + s.len() > self.cap {
            self.over = true;
            return Err(fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

impl Visit for Collector<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.into());
        } else {
            self.push_text(field, value);
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, FieldValue::U64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, FieldValue::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, FieldValue::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // Not `to_string`, which panics when a `Display` impl fails.
        let mut text = String::new();
        let _ = write!(text, "{value}");
        self.push_text(field, &text);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(debug_text(value));
            return;
        }
        if is_sensitive(field.name()) {
            // Never formatted: the value does not even reach a buffer.
            self.push(field, FieldValue::Str(SENSITIVE_MARKER.into()));
            return;
        }
        match self.cap {
            None => self.push(field, FieldValue::Str(debug_text(value))),
            Some(cap) => {
                let mut w = Capped {
                    text: String::new(),
                    cap,
                    over: false,
                };
                let _ = write!(w, "{value:?}");
                let v = if w.over {
                    FieldValue::Str(format_compact!("[omitted: more than {cap} bytes]"))
                } else {
                    FieldValue::Str(w.text.into())
                };
                self.push(field, v);
            }
        }
    }
}

/// Sets `name` in `fields`, replacing an earlier value of the same field.
pub(crate) fn set_field(fields: &mut Fields, name: &'static str, value: FieldValue) {
    match fields.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => fields.push((name, value)),
    }
}

/// The text of field `name`, if recorded.
pub(crate) fn field_text(fields: &FieldSlice, name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_text())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::field::Value;

    /// Visits one field named `name` with `value`, as a span (`cap`) or an event would.
    fn visit(name: &'static str, value: &dyn Value, span: bool) -> FieldValue {
        struct Cs;
        impl tracing::callsite::Callsite for Cs {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &tracing::Metadata<'_> {
                unreachable!()
            }
        }
        static CS: Cs = Cs;
        let names: &'static [&'static str] = Box::leak(Box::new([name]));
        let set = tracing::field::FieldSet::new(names, tracing::callsite::Identifier(&CS));
        let field = set.field(name).unwrap();
        let mut fields = Fields::new();
        let mut c = if span {
            Collector::for_span(&mut fields)
        } else {
            Collector::new(&mut fields)
        };
        value.record(&field, &mut c);
        fields.pop().unwrap().1
    }

    /// A `Debug` that fails half-way, as a buggy impl may.
    struct Failing;

    impl fmt::Debug for Failing {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("half")?;
            Err(fmt::Error)
        }
    }

    impl fmt::Display for Failing {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Debug::fmt(self, f)
        }
    }

    impl std::error::Error for Failing {}

    /// `format_compact!` and `to_string` panic when a `Debug` or `Display` impl fails; the
    /// caller's thread must not.
    #[test]
    fn a_failing_debug_or_display_keeps_what_it_wrote_and_never_panics() {
        let failing = tracing::field::debug(Failing);
        let half = FieldValue::Str("half".into());
        assert_eq!(visit("value", &failing, false), half);
        assert_eq!(visit("value", &failing, true), half);
        let error: &(dyn std::error::Error + 'static) = &Failing;
        assert_eq!(visit("error", &error, false), half);
    }

    #[test]
    fn sensitive_genai_contents_are_never_copied() {
        for name in SENSITIVE_GENAI_FIELDS {
            let v = visit(name, &"{\"password\": \"hunter2\"}", false);
            assert_eq!(v, FieldValue::Str(SENSITIVE_MARKER.into()), "{name}");
            let v = visit(name, &tracing::field::debug(vec!["secret"]), true);
            assert_eq!(v, FieldValue::Str(SENSITIVE_MARKER.into()), "{name}");
        }
        assert_eq!(
            visit("gen_ai.tool.name", &"search", true),
            FieldValue::Str("search".into())
        );
    }

    #[test]
    fn an_over_cap_span_value_becomes_a_marker_never_a_prefix() {
        let big = "k".repeat(SPAN_FIELD_CAP + 1);
        assert_eq!(
            visit("prompt", &big.as_str(), true),
            FieldValue::Str(format!("[omitted: {} bytes]", SPAN_FIELD_CAP + 1).into())
        );
        let at_cap = "k".repeat(SPAN_FIELD_CAP);
        assert_eq!(
            visit("prompt", &at_cap.as_str(), true),
            FieldValue::Str(at_cap.as_str().into())
        );
        assert_eq!(
            visit("prompt", &tracing::field::debug(&big), true),
            FieldValue::Str(format!("[omitted: more than {SPAN_FIELD_CAP} bytes]").into())
        );
        // Events are not capped here (the worker's size limits apply).
        assert_eq!(
            visit("prompt", &big.as_str(), false),
            FieldValue::Str(big.as_str().into())
        );
    }
}
