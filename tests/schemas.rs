//! Every shipped schema accepts a generated envelope of its type and rejects broken ones
//! (missing field, wrong type, bad UUID, bad timestamp), validated with `jsonschema`.

use serde_json::{json, Value};
use tracing_omninode::catalog::{FieldType, CATALOG};
use tracing_omninode::envelope::{Envelope, Meta, Source};
use tracing_omninode::Timestamp;

/// A payload with every required field set to a valid value of its type.
fn sample_payload(kind: &tracing_omninode::catalog::EventKind) -> Value {
    let mut p = serde_json::Map::new();
    for (name, ft) in kind.fields {
        let v = match ft {
            FieldType::String | FieldType::NonEmptyString | FieldType::StringOrNull => json!("x"),
            FieldType::Number | FieldType::NumberOrNull => json!(0.5),
            FieldType::Integer => json!(12),
            FieldType::Object => json!({"k": "v"}),
            FieldType::Array => json!(["a"]),
            FieldType::StringArray => json!(["a", "b"]),
            FieldType::Timestamp => json!(Timestamp::now().to_string()),
            FieldType::Uuid => json!(uuid::Uuid::now_v7().to_string()),
            FieldType::OneOf(allowed) => json!(allowed[0]),
        };
        p.insert((*name).to_owned(), v);
    }
    p.insert("extra_field_is_allowed".into(), json!(true));
    Value::Object(p)
}

fn sample(kind: &'static tracing_omninode::catalog::EventKind) -> Value {
    let env = Envelope::from_payload(
        kind,
        sample_payload(kind),
        Meta {
            event_id: uuid::Uuid::now_v7(),
            timestamp: Timestamp::now(),
            tenant_id: "acme".into(),
            namespace: "prod".into(),
            source: Source {
                service_name: "svc".into(),
                instance_id: "i-1".into(),
            },
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: Some(uuid::Uuid::now_v7()),
            sequence: 1,
        },
    );
    serde_json::to_value(env).unwrap()
}

#[test]
fn every_schema_accepts_valid_and_rejects_broken_envelopes() {
    for kind in &CATALOG {
        let schema: Value = serde_json::from_slice(kind.schema).unwrap();
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{}: schema does not compile: {e}", kind.event_type));
        let good = sample(kind);
        let errors: Vec<String> = validator
            .iter_errors(&good)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", kind.event_type);
        assert!(tracing_omninode::validate::validate_envelope(&good).is_ok());

        let first_field = kind.fields[0].0;
        type Breaker = Box<dyn Fn(&mut Value)>;
        let breakers: Vec<(&str, Breaker)> = vec![
            (
                "missing payload field",
                Box::new(move |v: &mut Value| {
                    v["payload"].as_object_mut().unwrap().remove(first_field);
                }),
            ),
            (
                "wrong payload type",
                Box::new(move |v: &mut Value| {
                    v["payload"][first_field] = json!({"not": "right"});
                }),
            ),
            (
                "bad event_id uuid",
                Box::new(|v: &mut Value| v["event_id"] = json!("1234")),
            ),
            (
                "v4 event_id",
                Box::new(|v: &mut Value| v["event_id"] = json!(uuid::Uuid::new_v4().to_string())),
            ),
            (
                "bad correlation uuid",
                Box::new(|v: &mut Value| v["correlation_id"] = json!("ABC")),
            ),
            (
                "bad timestamp",
                Box::new(|v: &mut Value| v["timestamp"] = json!("2026-11-28 14:03:07")),
            ),
            (
                "millisecond timestamp",
                Box::new(|v: &mut Value| v["timestamp"] = json!("2026-11-28T14:03:07.123Z")),
            ),
            (
                "wrong event_type",
                Box::new(|v: &mut Value| v["event_type"] = json!("omninode.other.v1")),
            ),
            (
                "missing envelope field",
                Box::new(|v: &mut Value| {
                    v.as_object_mut().unwrap().remove("tenant_id");
                }),
            ),
            (
                "sequence zero",
                Box::new(|v: &mut Value| v["sequence"] = json!(0)),
            ),
        ];
        for (what, breaker) in breakers {
            let mut bad = good.clone();
            breaker(&mut bad);
            assert!(
                !validator.is_valid(&bad),
                "{}: schema accepted {what}",
                kind.event_type
            );
            assert!(
                tracing_omninode::validate::validate_envelope(&bad).is_err(),
                "{}: validate_envelope accepted {what}",
                kind.event_type
            );
        }
    }
}

#[test]
fn schema_hash_header_is_sha256_of_the_file() {
    use sha2::{Digest, Sha256};
    for kind in &CATALOG {
        let path = format!(
            "{}/schemas/{}.json",
            env!("CARGO_MANIFEST_DIR"),
            kind.event_type
        );
        let bytes = std::fs::read(&path).unwrap();
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(kind.schema_hash(), format!("sha256:{hex}"));
    }
}
