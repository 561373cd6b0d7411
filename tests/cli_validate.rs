//! `omninode-events validate` finds no problem in what the pipeline produced, and each
//! kind of problem in the same stream salted with broken records (not JSON, an invalid
//! envelope, a wrong key, a header that contradicts the envelope, a wrong
//! `x-schema-hash`, a sequence gap), on topics, in a `tail --format json` file and in
//! bare envelopes on stdin.

mod cli_support;
mod common;

use std::time::Duration;

use common::AUDIT;
use rdkafka::producer::BaseProducer;
use serde_json::Value;

fn produce_clean(bootstrap: &str, prefix: &str) {
    let report = cli_support::pipeline(
        bootstrap,
        prefix,
        |b| b,
        || {
            tracing_omninode::audit!(
                action = "order.refund",
                actor = "carol",
                resource = "order/9",
                outcome = "success"
            );
            tracing_omninode::security!(
                event_type = "api_key_used",
                user_id = "u-7",
                resource = "billing",
                decision = "allow"
            );
            tracing::info_span!("agent", agent_name = "coder")
                .in_scope(|| tracing::info!("working"));
        },
    );
    assert_eq!(report.delivered, 5, "{report:?}");
}

fn write(p: &BaseProducer, topic: &str, key: &str, headers: &[(String, String)], value: &str) {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    cli_support::write(p, topic, key, &h, value);
}

fn set(h: &mut [(String, String)], name: &str, value: &str) {
    h.iter_mut().find(|(k, _)| k == name).unwrap().1 = value.to_owned();
}

#[test]
fn validate_finds_each_kind_of_problem_and_none_in_a_clean_stream() {
    let bootstrap = common::broker();
    let prefix = common::unique_prefix("validate");
    common::provision(&bootstrap, &prefix);
    produce_clean(&bootstrap, &prefix);

    let clean = cli_support::run_ok(&bootstrap, &prefix, &["validate", "--all"], 0);
    assert_eq!(
        clean.stdout,
        "checked 5 records: 0 problems (0 records with problems)\n"
    );

    // Salt the audit topic with broken copies of its record.
    let topic = format!("{prefix}{AUDIT}");
    let good = &common::consume(
        &bootstrap,
        std::slice::from_ref(&topic),
        1,
        Duration::from_secs(10),
    )[0];
    let headers: Vec<(String, String)> = good
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let value = good.value.to_string();
    let p = cli_support::producer(&bootstrap);
    write(&p, &topic, "acme", &headers, "garbage, not JSON");
    let mut invalid = good.value.clone();
    invalid["payload"]["outcome"] = "maybe".into();
    write(&p, &topic, "acme", &headers, &invalid.to_string());
    write(&p, &topic, "globex", &headers, &value);
    let mut tenant = headers.clone();
    set(&mut tenant, "x-tenant", "globex");
    write(&p, &topic, "acme", &tenant, &value);
    let mut hash = headers.clone();
    set(
        &mut hash,
        "x-schema-hash",
        &format!("sha256:{}", "0".repeat(64)),
    );
    write(&p, &topic, "acme", &hash, &value);
    // An event of the same instance ten numbers on: five numbers are missing.
    let mut later = good.value.clone();
    let seq = later["sequence"].as_u64().unwrap() + 10;
    let id = uuid::Uuid::now_v7().to_string();
    later["sequence"] = seq.into();
    later["event_id"] = id.clone().into();
    let mut later_h = headers.clone();
    set(&mut later_h, "x-sequence", &seq.to_string());
    set(&mut later_h, "x-event-id", &id);
    write(&p, &topic, "acme", &later_h, &later.to_string());

    let salted = cli_support::run_ok(&bootstrap, &prefix, &["validate", "--all"], 1);
    let out = &salted.stdout;
    for (offset, needle) in [
        (1, "not JSON"),
        (2, "envelope payload.outcome: `maybe` is not one of"),
        (
            3,
            "key `globex` is not the catalog partition key `acme` (payload.tenant_id)",
        ),
        (
            4,
            "header x-tenant `globex` does not match the envelope (`acme`)",
        ),
        (5, "header x-schema-hash `sha256:0000"),
        (
            6,
            "sequence gap before this record: 6..10 of test-svc/test-1 missing (5 events",
        ),
    ] {
        let line = format!("{topic}[0]@{offset}: {needle}");
        assert!(out.contains(&line), "missing {line}\n{out}");
    }
    assert!(
        out.ends_with("checked 11 records: 6 problems (5 records with problems)\n"),
        "{out}"
    );

    // The same stream as a file of `tail --format json` records: the same problems.
    let dump = cli_support::run_ok(
        &bootstrap,
        &prefix,
        &["tail", "--all", "--format", "json"],
        0,
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &dump.stdout).unwrap();
    let path = file.path().to_str().unwrap();
    let from_file = cli_support::run_ok(&bootstrap, &prefix, &["validate", path], 1);
    assert!(
        from_file
            .stdout
            .ends_with("checked 11 records: 6 problems (5 records with problems)\n"),
        "{}",
        from_file.stdout
    );
    assert!(
        from_file
            .stdout
            .contains(&format!("({topic}[0]@3): key `globex`")),
        "{}",
        from_file.stdout
    );

    // Bare envelopes on stdin (no key, no headers): only what the envelopes show.
    let envelopes: String = dump
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["value"].is_object())
        .map(|r| format!("{}\n", r["value"]))
        .collect();
    let validate = cli_support::command(&bootstrap, &prefix, &["validate", "-"]);
    let out = cli_support::with_stdin(validate, &envelopes);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.ends_with("checked 10 records: 2 problems (1 records with problems)\n"),
        "{text}"
    );
    assert!(text.contains("stdin:"), "{text}");
}
