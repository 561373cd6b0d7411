//! Validation of envelopes against the wire contract: naming rule, UUIDs, timestamps,
//! `schema_ref`, partition keys and required payload fields, one event or a batch.
//!
//! The worker checks what it did not generate itself: [`validate_payload`] on every
//! sanitized payload, plus the identity fields (tenant, namespace, source), before producing;
//! a failure sends the event to the dead-letter topic as `NON_RETRYABLE_VALIDATION`.
//! [`validate_envelope`] checks a whole envelope from elsewhere (tools, consumers, tests).

use serde_json::Value;

use crate::contract::catalog::{self, EventKind, FieldType};
use crate::contract::timestamp::Timestamp;

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ValidationError {
    /// JSON path of the field (`payload.score`).
    pub path: String,
    /// The problem.
    pub problem: Problem,
}

/// The kinds of validation failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A required field is absent.
    #[error("required field is missing")]
    Missing,
    /// A field has the wrong JSON type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the contract requires.
        expected: &'static str,
        /// What was there.
        found: &'static str,
    },
    /// Not a lowercase hyphenated UUID.
    #[error("`{0}` is not a lowercase hyphenated UUID")]
    BadUuid(String),
    /// Not a UUID of version 7.
    #[error("`{0}` is not a UUIDv7 (ids the library generates are v7)")]
    NotV7(String),
    /// Not an RFC 3339 UTC microsecond timestamp.
    #[error(
        "`{0}` is not an RFC 3339 UTC timestamp with microseconds (2026-11-28T14:03:07.123456Z)"
    )]
    BadTimestamp(String),
    /// Event type breaks the naming rule.
    #[error("`{0}` does not follow omninode.<domain>.<entity...>.<action>.v<N> (lowercase, digits and '-')")]
    BadEventType(String),
    /// Event type is well formed but not in the catalog.
    #[error("`{0}` is not in the catalog")]
    UnknownEventType(String),
    /// `schema_ref` does not name the event type's schema.
    #[error("expected `{expected}`")]
    SchemaRefMismatch {
        /// The right value.
        expected: String,
    },
    /// A value outside the allowed set.
    #[error("`{found}` is not one of {allowed:?}")]
    NotAllowed {
        /// The value.
        found: String,
        /// The allowed values.
        allowed: &'static [&'static str],
    },
    /// Empty where a non-empty string is required.
    #[error("must not be empty")]
    Empty,
    /// The partition-key field is missing or empty.
    #[error("partition key field `{0}` is missing or empty")]
    NoPartitionKey(String),
    /// An envelope field that the contract does not have.
    #[error("unexpected envelope field")]
    Unexpected,
}

fn err(path: impl Into<String>, problem: Problem) -> ValidationError {
    ValidationError {
        path: path.into(),
        problem,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks the event naming rule `^omninode(\.[a-z][a-z0-9-]*)+\.v[1-9][0-9]*$`.
pub fn validate_event_type(event_type: &str) -> Result<(), ValidationError> {
    let bad = || err("event_type", Problem::BadEventType(event_type.to_owned()));
    let mut parts = event_type.split('.');
    if parts.next() != Some("omninode") {
        return Err(bad());
    }
    let rest: Vec<&str> = parts.collect();
    let Some((version, segments)) = rest.split_last() else {
        return Err(bad());
    };
    let version_ok = version.strip_prefix('v').is_some_and(|n| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0')
    });
    let segment_ok = |s: &&str| {
        let mut b = s.bytes();
        b.next().is_some_and(|c| c.is_ascii_lowercase())
            && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    };
    if version_ok && !segments.is_empty() && segments.iter().all(segment_ok) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Checks a lowercase hyphenated UUID (any version).
pub fn validate_uuid(path: &str, s: &str) -> Result<uuid::Uuid, ValidationError> {
    let well_formed = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    match uuid::Uuid::parse_str(s) {
        Ok(id) if well_formed => Ok(id),
        _ => Err(err(path, Problem::BadUuid(s.to_owned()))),
    }
}

/// Checks a lowercase hyphenated UUID of version 7 (and the RFC 9562 variant, as the
/// shipped schemas do).
pub fn validate_uuid_v7(path: &str, s: &str) -> Result<uuid::Uuid, ValidationError> {
    let id = validate_uuid(path, s)?;
    if id.get_version_num() == 7 && id.get_variant() == uuid::Variant::RFC4122 {
        Ok(id)
    } else {
        Err(err(path, Problem::NotV7(s.to_owned())))
    }
}

/// Checks an RFC 3339 UTC timestamp with microseconds.
pub fn validate_timestamp(path: &str, s: &str) -> Result<Timestamp, ValidationError> {
    Timestamp::parse(s).ok_or_else(|| err(path, Problem::BadTimestamp(s.to_owned())))
}

/// Checks that `schema_ref` names the schema of `event_type`.
pub fn validate_schema_ref(event_type: &str, schema_ref: &str) -> Result<(), ValidationError> {
    let expected = format!("schemas/{event_type}.json");
    if schema_ref == expected {
        Ok(())
    } else {
        Err(err("schema_ref", Problem::SchemaRefMismatch { expected }))
    }
}

/// Checks that the partition-key field is present and non-empty in the payload.
pub fn validate_partition_key(payload: &Value, key_field: &str) -> Result<(), ValidationError> {
    match payload.get(key_field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        Some(Value::Number(_)) => Ok(()),
        _ => Err(err(
            format!("payload.{key_field}"),
            Problem::NoPartitionKey(key_field.to_owned()),
        )),
    }
}

/// Checks one field; the path (`prefix.name`) is only formatted when there is an error.
fn check_field(prefix: &str, name: &str, v: &Value, ft: FieldType, out: &mut Vec<ValidationError>) {
    let path = || {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let wrong = |expected| {
        err(
            path(),
            Problem::WrongType {
                expected,
                found: type_name(v),
            },
        )
    };
    let result = match (ft, v) {
        (FieldType::String, Value::String(_)) => Ok(()),
        (FieldType::String, _) => Err(wrong("a string")),
        (FieldType::NonEmptyString, Value::String(s)) if s.is_empty() => {
            Err(err(path(), Problem::Empty))
        }
        (FieldType::NonEmptyString, Value::String(_)) => Ok(()),
        (FieldType::NonEmptyString, _) => Err(wrong("a non-empty string")),
        (FieldType::StringOrNull, Value::String(_) | Value::Null) => Ok(()),
        (FieldType::StringOrNull, _) => Err(wrong("a string or null")),
        (FieldType::Number, Value::Number(_)) => Ok(()),
        (FieldType::Number, _) => Err(wrong("a number")),
        (FieldType::NumberOrNull, Value::Number(_) | Value::Null) => Ok(()),
        (FieldType::NumberOrNull, _) => Err(wrong("a number or null")),
        (FieldType::Integer, Value::Number(n)) if n.is_u64() => Ok(()),
        (FieldType::Integer, _) => Err(wrong("a non-negative integer")),
        (FieldType::Object, Value::Object(_)) => Ok(()),
        (FieldType::Object, _) => Err(wrong("an object")),
        (FieldType::Array, Value::Array(_)) => Ok(()),
        (FieldType::Array, _) => Err(wrong("an array")),
        (FieldType::StringArray, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    out.push(err(
                        format!("{}[{i}]", path()),
                        Problem::WrongType {
                            expected: "a string",
                            found: type_name(item),
                        },
                    ));
                }
            }
            Ok(())
        }
        (FieldType::StringArray, _) => Err(wrong("an array of strings")),
        (FieldType::Timestamp, Value::String(s)) => match Timestamp::parse(s) {
            Some(_) => Ok(()),
            None => Err(err(path(), Problem::BadTimestamp(s.clone()))),
        },
        (FieldType::Timestamp, _) => Err(wrong("an RFC 3339 timestamp string")),
        (FieldType::Uuid, Value::String(s)) => validate_uuid("", s)
            .map(drop)
            .map_err(|e| err(path(), e.problem)),
        (FieldType::Uuid, _) => Err(wrong("a UUID string")),
        (FieldType::OneOf(allowed), Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        (FieldType::OneOf(allowed), Value::String(s)) => Err(err(
            path(),
            Problem::NotAllowed {
                found: s.clone(),
                allowed,
            },
        )),
        (FieldType::OneOf(_), _) => Err(wrong("a string")),
    };
    if let Err(e) = result {
        out.push(e);
    }
}

/// The fields of an envelope, in wire order (the generated schemas list them in this order).
pub(crate) const ENVELOPE_FIELDS: [&str; 11] = [
    "event_id",
    "event_type",
    "schema_ref",
    "timestamp",
    "tenant_id",
    "namespace",
    "source",
    "correlation_id",
    "causation_id",
    "sequence",
    "payload",
];

/// The fields of an envelope's `source`.
pub(crate) const SOURCE_FIELDS: [&str; 2] = ["service_name", "instance_id"];

/// Validates a whole envelope (as JSON) against SPEC §2 and its catalog entry, with the
/// catalog's default partition-key field. Returns every problem found, not just the first.
pub fn validate_envelope(envelope: &Value) -> Result<(), Vec<ValidationError>> {
    validate_envelope_with_key(envelope, None)
}

/// As [`validate_envelope`], with the partition-key field chosen by the caller's policy.
pub fn validate_envelope_with_key(
    envelope: &Value,
    key_field: Option<&str>,
) -> Result<(), Vec<ValidationError>> {
    let mut out = Vec::new();
    let Some(obj) = envelope.as_object() else {
        return Err(vec![err(
            "$",
            Problem::WrongType {
                expected: "an object",
                found: type_name(envelope),
            },
        )]);
    };
    for name in obj.keys() {
        if !ENVELOPE_FIELDS.contains(&name.as_str()) {
            out.push(err(name.clone(), Problem::Unexpected));
        }
    }
    let get = |f: &str| obj.get(f);
    let string_field = |f: &'static str, out: &mut Vec<ValidationError>| -> Option<String> {
        match get(f) {
            None => {
                out.push(err(f, Problem::Missing));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                out.push(err(
                    f,
                    Problem::WrongType {
                        expected: "a string",
                        found: type_name(v),
                    },
                ));
                None
            }
        }
    };

    if let Some(s) = string_field("event_id", &mut out) {
        if let Err(e) = validate_uuid_v7("event_id", &s) {
            out.push(e);
        }
    }
    let event_type = string_field("event_type", &mut out);
    let kind = event_type.as_deref().and_then(|t| {
        if let Err(e) = validate_event_type(t) {
            out.push(e);
            return None;
        }
        let k = catalog::lookup(t);
        if k.is_none() {
            out.push(err("event_type", Problem::UnknownEventType(t.to_owned())));
        }
        k
    });
    if let (Some(s), Some(t)) = (string_field("schema_ref", &mut out), &event_type) {
        if let Err(e) = validate_schema_ref(t, &s) {
            out.push(e);
        }
    }
    if let Some(s) = string_field("timestamp", &mut out) {
        if let Err(e) = validate_timestamp("timestamp", &s) {
            out.push(e);
        }
    }
    for f in ["tenant_id", "namespace"] {
        if string_field(f, &mut out).is_some_and(|s| s.is_empty()) {
            out.push(err(f, Problem::Empty));
        }
    }
    match get("source") {
        Some(Value::Object(src)) => {
            for f in SOURCE_FIELDS {
                match src.get(f) {
                    Some(v) => check_field("source", f, v, FieldType::NonEmptyString, &mut out),
                    None => out.push(err(format!("source.{f}"), Problem::Missing)),
                }
            }
            for name in src.keys().filter(|k| !SOURCE_FIELDS.contains(&k.as_str())) {
                out.push(err(format!("source.{name}"), Problem::Unexpected));
            }
        }
        Some(v) => check_field("", "source", v, FieldType::Object, &mut out),
        None => out.push(err("source", Problem::Missing)),
    }
    if let Some(s) = string_field("correlation_id", &mut out) {
        if let Err(e) = validate_uuid("correlation_id", &s) {
            out.push(e);
        }
    }
    match get("causation_id") {
        Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if let Err(e) = validate_uuid("causation_id", s) {
                out.push(e);
            }
        }
        Some(v) => check_field("", "causation_id", v, FieldType::StringOrNull, &mut out),
        None => out.push(err("causation_id", Problem::Missing)),
    }
    match get("sequence") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {}
        Some(v) => out.push(err(
            "sequence",
            Problem::WrongType {
                expected: "an integer >= 1",
                found: type_name(v),
            },
        )),
        None => out.push(err("sequence", Problem::Missing)),
    }
    match (get("payload"), kind) {
        (Some(payload @ Value::Object(_)), Some(kind)) => {
            payload_errors(kind, payload, key_field, &mut out)
        }
        (Some(Value::Object(_)), None) => {}
        (Some(v), _) => check_field("", "payload", v, FieldType::Object, &mut out),
        (None, _) => out.push(err("payload", Problem::Missing)),
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}

fn payload_errors(
    kind: &EventKind,
    payload: &Value,
    key_field: Option<&str>,
    out: &mut Vec<ValidationError>,
) {
    let Some(p) = payload.as_object() else {
        check_field("", "payload", payload, FieldType::Object, out);
        return;
    };
    for (name, ft) in kind.fields {
        match p.get(*name) {
            Some(v) => check_field("payload", name, v, *ft, out),
            None => out.push(err(format!("payload.{name}"), Problem::Missing)),
        }
    }
    let key = key_field.unwrap_or(kind.family.default_key_field());
    if let Err(e) = validate_partition_key(payload, key) {
        if !out.iter().any(|o| o.path == e.path) {
            out.push(e);
        }
    }
}

/// Validates a payload against its catalog entry: required fields, their types, and the
/// partition-key field (`key_field`, else the family default). The pipeline uses this for
/// envelopes it built itself, whose generated fields (ids, times, sequence) are correct by
/// construction; [`validate_envelope`] checks everything.
pub fn validate_payload(
    kind: &EventKind,
    payload: &Value,
    key_field: Option<&str>,
) -> Result<(), Vec<ValidationError>> {
    let mut out = Vec::new();
    payload_errors(kind, payload, key_field, &mut out);
    if out.is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}

/// The outcome of validating a batch: which events failed and why.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Number of envelopes checked.
    pub checked: usize,
    /// `(index in the batch, problems)` for every envelope that failed.
    pub failures: Vec<(usize, Vec<ValidationError>)>,
}

impl BatchReport {
    /// True when every envelope passed.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Validates every envelope of a batch and reports the failures by index.
pub fn validate_batch<'a>(envelopes: impl IntoIterator<Item = &'a Value>) -> BatchReport {
    let mut report = BatchReport::default();
    for (i, e) in envelopes.into_iter().enumerate() {
        report.checked += 1;
        if let Err(errs) = validate_envelope(e) {
            report.failures.push((i, errs));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_type_naming_rule() {
        let cases = [
            ("omninode.logging.audit.v1", true),
            ("omninode.intelligence.code-analysis.completed.v12", true),
            ("omninode.a.v1", true),
            ("omninode.v1", false),
            ("omninode.Logging.audit.v1", false),
            ("omninode.logging.audit.v0", false),
            ("omninode.logging.audit.v01", false),
            ("omninode.logging.audit", false),
            ("other.logging.audit.v1", false),
            ("omninode.logging..v1", false),
            ("omninode.1logging.v1", false),
            ("omninode.logging_x.v1", false),
            ("", false),
        ];
        for (s, ok) in cases {
            assert_eq!(validate_event_type(s).is_ok(), ok, "{s}");
        }
    }

    #[test]
    fn uuid_rules() {
        let v7 = uuid::Uuid::now_v7().to_string();
        let v4 = uuid::Uuid::new_v4().to_string();
        let cases = [
            (v7.as_str(), true, true),
            (v4.as_str(), true, false),
            ("0190A0B0-0000-7000-8000-000000000000", false, false),
            ("0190a0b000007000800000000000000", false, false),
            ("{0190a0b0-0000-7000-8000-000000000000}", false, false),
            ("not-a-uuid", false, false),
        ];
        for (s, any, seven) in cases {
            assert_eq!(validate_uuid("x", s).is_ok(), any, "{s}");
            assert_eq!(validate_uuid_v7("x", s).is_ok(), seven, "{s}");
        }
    }

    #[test]
    fn schema_ref_and_partition_key() {
        assert!(validate_schema_ref("omninode.a.v1", "schemas/omninode.a.v1.json").is_ok());
        assert!(validate_schema_ref("omninode.a.v1", "schemas/omninode.b.v1.json").is_err());
        assert!(validate_partition_key(&json!({"tenant_id": "t"}), "tenant_id").is_ok());
        assert!(validate_partition_key(&json!({"tenant_id": ""}), "tenant_id").is_err());
        assert!(validate_partition_key(&json!({}), "tenant_id").is_err());
    }

    fn audit() -> Value {
        json!({
            "event_id": uuid::Uuid::now_v7().to_string(),
            "event_type": "omninode.logging.audit.v1",
            "schema_ref": "schemas/omninode.logging.audit.v1.json",
            "timestamp": "2026-11-28T14:03:07.123456Z",
            "tenant_id": "acme",
            "namespace": "prod",
            "source": {"service_name": "svc", "instance_id": "i-1"},
            "correlation_id": uuid::Uuid::now_v7().to_string(),
            "causation_id": null,
            "sequence": 1,
            "payload": {
                "tenant_id": "acme", "action": "user.delete", "actor": "alice",
                "resource": "user/42", "timestamp": "2026-11-28T14:03:07.123456Z",
                "outcome": "success"
            }
        })
    }

    #[test]
    fn whole_envelope_table() {
        assert_eq!(validate_envelope(&audit()), Ok(()));
        type Breaker = fn(&mut Value);
        let cases: [(&str, Breaker); 12] = [
            ("payload.actor", |v| {
                v["payload"].as_object_mut().unwrap().remove("actor");
            }),
            ("payload.outcome", |v| {
                v["payload"]["outcome"] = json!("maybe")
            }),
            ("payload.timestamp", |v| {
                v["payload"]["timestamp"] = json!("yesterday")
            }),
            ("event_id", |v| {
                v["event_id"] = json!(uuid::Uuid::new_v4().to_string())
            }),
            ("event_id", |v| {
                // version 7, variant `c`: not RFC 9562
                v["event_id"] = json!("01937a6e-4f2b-7c3d-cd9f-0a1b2c3d4e5f")
            }),
            ("source.extra", |v| v["source"]["extra"] = json!("x")),
            ("correlation_id", |v| v["correlation_id"] = json!("abc")),
            ("sequence", |v| v["sequence"] = json!(0)),
            ("schema_ref", |v| v["schema_ref"] = json!("schemas/x.json")),
            ("tenant_id", |v| v["tenant_id"] = json!("")),
            ("extra", |v| v["extra"] = json!(1)),
            ("payload.tenant_id", |v| {
                v["payload"].as_object_mut().unwrap().remove("tenant_id");
            }),
        ];
        for (path, breaker) in cases {
            let mut v = audit();
            breaker(&mut v);
            let errs = validate_envelope(&v).unwrap_err();
            assert!(errs.iter().any(|e| e.path == path), "{path}: {errs:?}");
        }
    }

    #[test]
    fn batch_reports_failing_indexes() {
        let mut bad = audit();
        bad["payload"]["outcome"] = json!(3);
        let batch = [audit(), bad, audit()];
        let report = validate_batch(&batch);
        assert_eq!(report.checked, 3);
        assert_eq!(report.failures.len(), 1);
        assert_eq!(report.failures[0].0, 1);
        assert!(report.failures[0].1[0]
            .to_string()
            .contains("payload.outcome"));
    }
}
