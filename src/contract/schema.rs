//! The shipped JSON Schemas (`schemas/<event_type>.json`), generated from the catalog.
//!
//! [`generate`] turns one [`EventKind`] into the text of its schema file: a draft 2020-12
//! schema of the whole envelope (SPEC §2) whose `payload` part comes from the catalog's
//! field list, so the schema and the runtime validator ([`crate::contract::validate`]) read
//! the same definition (see [`crate::contract::catalog`] for where that definition lives).
//! The bytes are deterministic (fixed key order, 2-space indent, ASCII only, one trailing
//! newline) because their sha256 is the `x-schema-hash` header.
//!
//! # Regenerating the files
//!
//! ```text
//! OMNINODE_BLESS_SCHEMAS=1 cargo test --lib contract::schema
//! ```
//!
//! writes every stale file under `schemas/` (and removes files of types no longer in the
//! catalog). Without the variable the same test fails while any file differs from what
//! [`generate`] returns.
//!
//! # How a [`FieldType`] is written
//!
//! | field type | schema |
//! |---|---|
//! | `String` | `"type": "string"` |
//! | `NonEmptyString` | `$ref` `non_empty_string` (`minLength: 1`) |
//! | `StringOrNull` / `NumberOrNull` | `"type": ["string", "null"]` / `["number", "null"]` |
//! | `Number` | `"type": "number"` |
//! | `Integer` | `"type": "integer", "minimum": 0` |
//! | `Object` / `Array` | `"type": "object"` / `"type": "array"` |
//! | `StringArray` | `"type": "array", "items": {"type": "string"}` |
//! | `Timestamp` / `Uuid` | `$ref` `timestamp` / `uuid` (patterns, not `format`) |
//! | `OneOf(values)` | `"type": "string", "enum": values` |
//!
//! A field's description is the first paragraph of its doc comment; the event's is the first
//! paragraph of the struct's doc comment.

use std::fmt::Write as _;

use serde::{Serialize, Serializer};

use crate::contract::catalog::{EventKind, FieldType};
use crate::contract::validate::{ENVELOPE_FIELDS, SOURCE_FIELDS};

/// The JSON Schema dialect of every shipped schema.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

const UUID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
const UUID_V7_PATTERN: &str =
    "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$";

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` of a day that exists, as `Timestamp::parse` accepts it.
const TIMESTAMP_PATTERN: &str = concat!(
    "^(?:[0-9]{4}-(?:",
    "(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])", // days 1..28 of every month
    "|(?:0[13-9]|1[0-2])-(?:29|30)",              // 29 and 30 of all but February
    "|(?:0[13578]|1[02])-31",                     // 31 of the long months
    ")|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])", // February 29 of leap years
    "|(?:0[048]|[2468][048]|[13579][26])00)-02-29)",
    "T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)\\.[0-9]{6}Z$",
);

/// A JSON value whose objects keep the order their entries are written in.
enum Node {
    Obj(Vec<(&'static str, Node)>),
    Arr(Vec<Node>),
    Str(String),
    Bool(bool),
    Int(u64),
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Obj(entries) => ser.collect_map(entries.iter().map(|(k, v)| (k, v))),
            Node::Arr(items) => ser.collect_seq(items),
            Node::Str(s) => ser.serialize_str(s),
            Node::Bool(b) => ser.serialize_bool(*b),
            Node::Int(n) => ser.serialize_u64(*n),
        }
    }
}

fn text(s: impl Into<String>) -> Node {
    Node::Str(s.into())
}

fn texts<'a>(items: impl IntoIterator<Item = &'a str>) -> Node {
    Node::Arr(items.into_iter().map(text).collect())
}

/// `{"$ref": "#/$defs/<def>", "description": ...}`.
fn reference(def: &str, description: &str) -> Node {
    let mut node = vec![("$ref", text(format!("#/$defs/{def}")))];
    if !description.is_empty() {
        node.push(("description", text(description)));
    }
    Node::Obj(node)
}

/// `{"description": ..., "type": ..., <extra>}`.
fn typed(ty: Node, description: &str, extra: Vec<(&'static str, Node)>) -> Node {
    let mut node = Vec::with_capacity(2 + extra.len());
    if !description.is_empty() {
        node.push(("description", text(description)));
    }
    node.push(("type", ty));
    node.extend(extra);
    Node::Obj(node)
}

/// The schema of one payload field.
fn field_schema(ft: FieldType, description: &str) -> Node {
    let simple = |ty: &str| typed(text(ty), description, Vec::new());
    let or_null = |ty: &str| typed(texts([ty, "null"]), description, Vec::new());
    match ft {
        FieldType::String => simple("string"),
        FieldType::NonEmptyString => reference("non_empty_string", description),
        FieldType::StringOrNull => or_null("string"),
        FieldType::Number => simple("number"),
        FieldType::NumberOrNull => or_null("number"),
        FieldType::Integer => typed(
            text("integer"),
            description,
            vec![("minimum", Node::Int(0))],
        ),
        FieldType::Object => simple("object"),
        FieldType::Array => simple("array"),
        FieldType::StringArray => typed(
            text("array"),
            description,
            vec![("items", Node::Obj(vec![("type", text("string"))]))],
        ),
        FieldType::Timestamp => reference("timestamp", description),
        FieldType::Uuid => reference("uuid", description),
        FieldType::OneOf(values) => typed(
            text("string"),
            description,
            vec![("enum", texts(values.iter().copied()))],
        ),
    }
}

/// The entries of an object schema that requires all of `properties`, in their order.
fn object_entries(
    properties: Vec<(&'static str, Node)>,
    additional: bool,
) -> [(&'static str, Node); 4] {
    [
        ("type", text("object")),
        ("required", texts(properties.iter().map(|(name, _)| *name))),
        ("properties", Node::Obj(properties)),
        ("additionalProperties", Node::Bool(additional)),
    ]
}

fn payload_schema(kind: &EventKind) -> Node {
    let fields = kind
        .described_fields()
        .map(|(name, ft, doc)| (name, field_schema(ft, &doc)))
        .collect();
    Node::Obj(object_entries(fields, true).into())
}

/// The schema of one envelope field (`validate::ENVELOPE_FIELDS`).
fn envelope_property(kind: &EventKind, name: &str) -> Node {
    match name {
        "event_id" => reference("uuid_v7", "Unique id of this event, a UUIDv7."),
        "event_type" => Node::Obj(vec![("const", text(kind.event_type))]),
        "schema_ref" => Node::Obj(vec![("const", text(kind.schema_ref()))]),
        "timestamp" => reference("timestamp", "When the event was created."),
        "tenant_id" | "namespace" => reference("non_empty_string", ""),
        "source" => {
            let fields = SOURCE_FIELDS.map(|f| (f, reference("non_empty_string", "")));
            let mut node = vec![("description", text("The producing service and instance."))];
            node.extend(object_entries(fields.into(), false));
            Node::Obj(node)
        }
        "correlation_id" => reference(
            "uuid",
            "Shared by every event of one logical operation; inherited down the span tree.",
        ),
        "causation_id" => Node::Obj(vec![
            (
                "description",
                text("event_id of the event that caused this one, or null."),
            ),
            (
                "anyOf",
                Node::Arr(vec![
                    reference("uuid", ""),
                    Node::Obj(vec![("type", text("null"))]),
                ]),
            ),
        ]),
        "sequence" => typed(
            text("integer"),
            "Per producing instance, starts at 1 and rises by 1 per envelope.",
            vec![("minimum", Node::Int(1))],
        ),
        "payload" => payload_schema(kind),
        other => unreachable!("envelope field `{other}` has no schema"),
    }
}

/// The shared definitions, repeated in every file so that each file stands alone.
fn defs() -> Node {
    let pattern = |description: &str, pattern: &str| {
        typed(
            text("string"),
            description,
            vec![("pattern", text(pattern))],
        )
    };
    Node::Obj(vec![
        (
            "uuid",
            pattern("A lowercase, hyphenated UUID of any version.", UUID_PATTERN),
        ),
        (
            "uuid_v7",
            pattern(
                "A lowercase, hyphenated UUID version 7 (RFC 9562 variant).",
                UUID_V7_PATTERN,
            ),
        ),
        (
            "timestamp",
            pattern(
                "RFC 3339 in UTC with microseconds and a Z suffix, \
                 e.g. 2026-11-28T14:03:07.123456Z.",
                TIMESTAMP_PATTERN,
            ),
        ),
        (
            "non_empty_string",
            typed(text("string"), "", vec![("minLength", Node::Int(1))]),
        ),
    ])
}

/// The exact text of `schemas/<event_type>.json` for one catalog entry.
pub fn generate(kind: &EventKind) -> String {
    let envelope = ENVELOPE_FIELDS.map(|f| (f, envelope_property(kind, f)));
    let mut schema = vec![
        ("$schema", text(DIALECT)),
        ("$id", text(kind.schema_ref())),
        ("title", text(kind.event_type)),
        (
            "description",
            text(format!(
                "{} Validates the whole envelope, including the payload fields this event \
                 type requires.",
                kind.description()
            )),
        ),
    ];
    schema.extend(object_entries(envelope.into(), false));
    schema.push(("$defs", defs()));
    let json = serde_json::to_string_pretty(&Node::Obj(schema)).expect("a Node always serializes");
    let mut out = String::with_capacity(json.len() + 1);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::contract::catalog::CATALOG;

    const BLESS: &str = "OMNINODE_BLESS_SCHEMAS";

    /// The shipped files are what [`generate`] returns; with `OMNINODE_BLESS_SCHEMAS=1` the
    /// stale ones are rewritten instead.
    #[test]
    fn shipped_schema_files_are_generated_from_the_catalog() {
        let bless = std::env::var_os(BLESS).is_some_and(|v| v == "1");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let mut stale = Vec::new();
        for kind in &CATALOG {
            let want = generate(kind);
            let path = dir.join(format!("{}.json", kind.event_type));
            let on_disk = std::fs::read(&path).unwrap_or_default();
            if on_disk != want.as_bytes() {
                if bless {
                    std::fs::write(&path, &want).unwrap();
                }
                stale.push(path.display().to_string());
            } else if kind.schema != want.as_bytes() && !bless {
                stale.push(format!("{} (embedded copy; rebuild)", path.display()));
            }
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let known = CATALOG
                .iter()
                .any(|k| format!("{}.json", k.event_type) == name);
            if name.ends_with(".json") && !known {
                if bless {
                    std::fs::remove_file(&path).unwrap();
                }
                stale.push(format!("{} (not in the catalog)", path.display()));
            }
        }
        if bless {
            eprintln!(
                "{BLESS}: rewrote or removed {} file(s): {stale:#?}",
                stale.len()
            );
            return;
        }
        assert!(
            stale.is_empty(),
            "schema files differ from the catalog: {stale:#?}\nregenerate them with \
             `{BLESS}=1 cargo test --lib contract::schema` and commit schemas/"
        );
    }

    #[test]
    fn output_is_deterministic_ascii_json() {
        for kind in &CATALOG {
            let a = generate(kind);
            assert_eq!(a, generate(kind));
            assert!(a.is_ascii() && a.ends_with("}\n") && !a.ends_with("\n\n"));
            let v: serde_json::Value = serde_json::from_str(&a).unwrap();
            assert_eq!(v["$id"], kind.schema_ref());
            let required = v["properties"]["payload"]["required"].as_array().unwrap();
            assert_eq!(required.len(), kind.fields.len());
        }
    }

    #[test]
    fn non_empty_strings_get_min_length() {
        let kind = crate::contract::catalog::lookup("omninode.logging.audit.v1").unwrap();
        let v: serde_json::Value = serde_json::from_str(&generate(kind)).unwrap();
        let actor = &v["properties"]["payload"]["properties"]["actor"];
        assert_eq!(actor["$ref"], "#/$defs/non_empty_string");
        assert_eq!(v["$defs"]["non_empty_string"]["minLength"], 1);
    }
}
