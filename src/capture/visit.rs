//! The field visitor: records a span's or event's fields into a compact list, keeping the
//! `message` apart. Values are copied as tracing hands them over; nothing is formatted as
//! JSON here.

use std::fmt;

use tracing::field::{Field, Visit};

use crate::capture::record::{FieldValue, Fields};

/// Records fields into `fields`; `message` goes to `message`.
pub(crate) struct Collector<'a> {
    pub fields: &'a mut Fields,
    pub message: Option<String>,
}

impl<'a> Collector<'a> {
    pub fn new(fields: &'a mut Fields) -> Self {
        Collector {
            fields,
            message: None,
        }
    }
}

impl Visit for Collector<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.fields
                .push((field.name(), FieldValue::Str(value.to_owned())));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name(), FieldValue::I64(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name(), FieldValue::U64(value)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.push((field.name(), FieldValue::F64(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name(), FieldValue::Bool(value)));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.fields
            .push((field.name(), FieldValue::Str(value.to_string())));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.fields.push((field.name(), FieldValue::Str(text)));
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
pub(crate) fn field_text(fields: &Fields, name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_text())
}
