//! The event catalog of SPEC §1: every event type, its family, partition-key field,
//! required payload fields and shipped JSON Schema.
//!
//! # One definition per event type
//!
//! Every event type is written down once, in the `event_catalog!` invocation of
//! `src/contract/events.rs`. That one definition yields the payload struct of
//! [`crate::contract::events`], its [`Event`](crate::contract::events::Event) impl and its
//! [`EventKind`] in [`CATALOG`] (family, time field, required fields with their
//! [`FieldType`] and description). The runtime validator
//! ([`crate::contract::validate`]) reads [`CATALOG`]; the shipped `schemas/<event_type>.json`
//! files are generated from it by [`crate::contract::schema::generate`] and embedded here
//! with `include_bytes!` (their sha256 is the `x-schema-hash` header).
//!
//! # Adding an event type (or changing one)
//!
//! 1. Add (or edit) its definition in `event_catalog!` in `src/contract/events.rs`.
//! 2. A new type only: create the file first, `touch schemas/<event_type>.json`, since
//!    `include_bytes!` needs it to exist to compile.
//! 3. Regenerate the schemas: `OMNINODE_BLESS_SCHEMAS=1 cargo test --lib contract::schema`
//!    and commit `schemas/`. Without the variable that test fails while a file is stale.

use once_cell::sync::Lazy;
use sha2::{Digest, Sha256};

use crate::contract::events;

/// A group of related event types that share a partition-key policy and a delivery class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Family {
    /// `omninode.logging.application.v1`.
    Application,
    /// `omninode.logging.audit.v1`.
    Audit,
    /// `omninode.logging.security.v1`.
    Security,
    /// `omninode.agent.execution.*`.
    AgentExecution,
    /// `omninode.agent.quality.gate.*`.
    QualityGate,
    /// `omninode.agent.provider.*`.
    Provider,
    /// `omninode.agent.confidence.*`.
    Confidence,
    /// `omninode.agent.routing.*`.
    Routing,
    /// `omninode.agent.transformation.*`.
    Transformation,
    /// `omninode.intelligence.code-analysis.*`.
    CodeAnalysis,
}

impl Family {
    /// Every family, in catalog order.
    pub const ALL: [Family; 10] = [
        Family::Application,
        Family::Audit,
        Family::Security,
        Family::AgentExecution,
        Family::QualityGate,
        Family::Provider,
        Family::Confidence,
        Family::Routing,
        Family::Transformation,
        Family::CodeAnalysis,
    ];

    /// The payload field whose value is the record key by default (SPEC §1).
    pub fn default_key_field(self) -> &'static str {
        match self {
            Family::Application => "service_name",
            Family::Audit | Family::Security => "tenant_id",
            _ => "correlation_id",
        }
    }

    /// Whether events of this family may be dropped under overload (only application logs).
    /// All other families are guaranteed: they wait for queue room, then go to the spool.
    pub fn is_guaranteed(self) -> bool {
        !matches!(self, Family::Application)
    }
}

/// The JSON type a required payload field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A string.
    String,
    /// A non-empty string.
    NonEmptyString,
    /// A string or `null`.
    StringOrNull,
    /// Any JSON number.
    Number,
    /// A number or `null`.
    NumberOrNull,
    /// A non-negative integer.
    Integer,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// An array of strings.
    StringArray,
    /// An RFC 3339 UTC timestamp with microseconds.
    Timestamp,
    /// A lowercase hyphenated UUID.
    Uuid,
    /// One of a fixed set of strings.
    OneOf(&'static [&'static str]),
}

/// One entry of the catalog.
#[derive(Debug)]
pub struct EventKind {
    /// The event type, equal to the topic name (before any prefix).
    pub event_type: &'static str,
    /// The family it belongs to.
    pub family: Family,
    /// The payload field that carries the event's own time, filled from the envelope
    /// timestamp when the producer leaves it out.
    pub time_field: Option<&'static str>,
    /// Required payload fields and their types.
    pub fields: &'static [(&'static str, FieldType)],
    /// The doc comment of each field of [`EventKind::fields`], same order (raw lines).
    pub field_docs: &'static [&'static str],
    /// The doc comment of the event type (raw lines).
    pub doc: &'static str,
    /// The exact bytes of the shipped schema file.
    pub schema: &'static [u8],
}

impl EventKind {
    /// `schemas/<event_type>.json`, the envelope's `schema_ref`.
    pub fn schema_ref(&self) -> String {
        ["schemas/", self.event_type, ".json"].concat()
    }

    /// `sha256:<hex>` of the exact schema file bytes (the `x-schema-hash` header).
    pub fn schema_hash(&self) -> &'static str {
        &SCHEMA_HASHES[index_of(self.event_type).expect("EventKind values only come from CATALOG")]
    }

    /// The schema as text.
    pub fn schema_str(&self) -> &'static str {
        std::str::from_utf8(self.schema).expect("shipped schemas are UTF-8")
    }

    /// Whether the event may be dropped under overload (see [`Family::is_guaranteed`]).
    pub fn is_guaranteed(&self) -> bool {
        self.family.is_guaranteed()
    }

    /// What the event means: the first paragraph of its doc comment, on one line.
    pub fn description(&self) -> String {
        first_paragraph(self.doc)
    }

    /// Every required field with its type and description (the first paragraph of its doc
    /// comment, on one line).
    pub fn described_fields(&self) -> impl Iterator<Item = (&'static str, FieldType, String)> {
        self.fields
            .iter()
            .zip(self.field_docs)
            .map(|(&(name, ft), doc)| (name, ft, first_paragraph(doc)))
    }
}

/// The first paragraph of doc-comment text, its lines trimmed and joined by spaces.
fn first_paragraph(doc: &str) -> String {
    doc.lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

static SCHEMA_HASHES: Lazy<Vec<String>> = Lazy::new(|| {
    CATALOG
        .iter()
        .map(|k| format!("sha256:{:x}", Sha256::digest(k.schema)))
        .collect()
});

static INDEX: Lazy<std::collections::HashMap<&'static str, usize>> = Lazy::new(|| {
    CATALOG
        .iter()
        .enumerate()
        .map(|(i, k)| (k.event_type, i))
        .collect()
});

fn index_of(event_type: &str) -> Option<usize> {
    INDEX.get(event_type).copied()
}

/// Looks an event type up in the catalog.
pub fn lookup(event_type: &str) -> Option<&'static EventKind> {
    index_of(event_type).map(|i| &CATALOG[i])
}

/// Every event type of SPEC §1, in definition order (built from the definitions in
/// [`crate::contract::events`]).
pub static CATALOG: [EventKind; events::DEFINITIONS.len()] = events::DEFINITIONS;

/// Defines the catalog: for every event type, the payload struct, its `Event` impl and its
/// [`EventKind`], from one definition. Used once, in `src/contract/events.rs`:
///
/// ```text
/// event_catalog! {
///     /// What the event means (first paragraph: the schema's description).
///     StructName = "omninode.<domain>.<entity>.<action>.v1", family: <Family> [, time: <field>] {
///         /// What the field means (first paragraph: the schema's description).
///         [#[serde(...)]]
///         field_name: <Rust type> as <FieldType variant>[(<argument>)],
///         ...
///     } [not_in_catalog {
///         /// Struct fields that are not catalog fields (no schema entry, not validated).
///         #[serde(flatten)]
///         extra: Object,
///     }]
///     ...
/// }
/// ```
///
/// Every field before `not_in_catalog` is a required payload field of the catalog. A field
/// named `correlation_id` (an `Option<Uuid>`) becomes [`Event::correlation_id`]; the time
/// field must be an `Option<Timestamp>`.
///
/// [`Event::correlation_id`]: crate::contract::events::Event::correlation_id
macro_rules! event_catalog {
    // The doc comment text of a list of attributes (`[doc = "..."]` kept, others skipped).
    (@doc [$($d:literal)*]) => { concat!($($d, "\n"),*) };
    (@doc [$($d:literal)*] [doc = $x:literal] $($rest:tt)*) => {
        event_catalog!(@doc [$($d)* $x] $($rest)*)
    };
    (@doc [$($d:literal)*] [$($other:tt)*] $($rest:tt)*) => {
        event_catalog!(@doc [$($d)*] $($rest)*)
    };
    (@time) => { None };
    (@time $time:ident) => { Some(stringify!($time)) };
    (@corr correlation_id) => {
        fn correlation_id(&self) -> Option<::uuid::Uuid> {
            self.correlation_id
        }
    };
    (@corr $other:ident) => {};
    ($(
        $(#[doc = $doc:literal])+
        $name:ident = $ty:literal, family: $family:ident $(, time: $time:ident)? {
            $(
                $(#[$($fattr:tt)*])*
                $field:ident : $fty:ty as $ft:ident $(($arg:expr))?
            ),* $(,)?
        } $(not_in_catalog {
            $(
                $(#[$xattr:meta])*
                $xfield:ident : $xty:ty
            ),* $(,)?
        })?
    )*) => {
        $(
            $(#[doc = $doc])+
            #[doc = ""]
            #[doc = concat!(" Published as `", $ty, "`.")]
            #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
            pub struct $name {
                $( $(#[$($fattr)*])* pub $field: $fty, )*
                $($( $(#[$xattr])* pub $xfield: $xty, )*)?
            }

            impl $crate::contract::events::sealed::Sealed for $name {}

            impl $crate::contract::events::Event for $name {
                const EVENT_TYPE: &'static str = $ty;
                $( event_catalog!(@corr $field); )*
            }

            // The time field exists and has the type the envelope fills in.
            $(const _: fn(&$name) -> &Option<$crate::contract::timestamp::Timestamp> =
                |e| &e.$time;)?
        )*

        /// The catalog entries, one per definition above, in order.
        pub(crate) const DEFINITIONS: [$crate::contract::catalog::EventKind;
            [$(stringify!($name)),*].len()] = [$(
            $crate::contract::catalog::EventKind {
                event_type: $ty,
                family: $crate::contract::catalog::Family::$family,
                time_field: event_catalog!(@time $($time)?),
                fields: &[$(
                    (stringify!($field), $crate::contract::catalog::FieldType::$ft $(($arg))?)
                ),*],
                field_docs: &[$( event_catalog!(@doc [] $([$($fattr)*])*) ),*],
                doc: event_catalog!(@doc [] $([doc = $doc])+),
                schema: include_bytes!(concat!("../../schemas/", $ty, ".json")),
            }
        ),*];
    };
}
pub(crate) use event_catalog;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_has_nineteen_unique_types() {
        let mut names: Vec<_> = CATALOG.iter().map(|k| k.event_type).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 19);
    }

    #[test]
    fn every_time_field_and_key_field_is_required() {
        for k in &CATALOG {
            let has = |f: &str| k.fields.iter().any(|(n, _)| *n == f);
            if let Some(t) = k.time_field {
                assert!(has(t), "{} lacks its time field {t}", k.event_type);
            }
            assert!(has(k.family.default_key_field()), "{}", k.event_type);
        }
    }

    #[test]
    fn schema_hash_is_sha256_of_file_bytes() {
        let k = lookup("omninode.logging.audit.v1").unwrap();
        let h = k.schema_hash();
        assert!(h.starts_with("sha256:") && h.len() == 71);
        assert!(h[7..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(
            h,
            lookup("omninode.logging.security.v1")
                .unwrap()
                .schema_hash()
        );
    }
}
