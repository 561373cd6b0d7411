//! An event too large for the broker goes to the DLQ as a truncated string (SPEC §3), and a
//! damaged spool (a torn last record, a flipped byte) loses only the damaged records: the
//! intact ones are replayed and delivered, the damage is counted (SPEC §4).

mod common;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::AUDIT;
use serde_json::Value;
use tracing_omninode::spool::{Spool, SpoolLimits, RECORD_OVERHEAD};
use tracing_omninode::validate::validate_envelope;
use tracing_omninode::wire::WireRecord;
use tracing_subscriber::prelude::*;

#[test]
fn oversize_event_is_dead_lettered_truncated() {
    const MAX: usize = 20_000;
    let prefix = common::unique_prefix("oversize");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .message_max_bytes(MAX)
        .build()
        .unwrap();
    let blob = "x".repeat(100 * 1024);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing_omninode::audit!(
            action = "report.export",
            actor = "alice",
            resource = "report/huge",
            outcome = "success",
            attachment = blob.as_str()
        );
        tracing_omninode::audit!(
            action = "report.export",
            actor = "alice",
            resource = "report/small",
            outcome = "success"
        );
    });
    let report = guard.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(
        (report.dead_lettered, report.delivered, report.spooled),
        (1, 1, 0),
        "{report:?}"
    );

    let topic = format!("{prefix}{AUDIT}");
    assert_eq!(
        common::records_on(&bootstrap, &topic),
        1,
        "only the small event is on the topic"
    );
    let got = common::consume(
        &bootstrap,
        std::slice::from_ref(&topic),
        1,
        Duration::from_secs(10),
    );
    assert_eq!(got[0].value["payload"]["resource"], "report/small");

    let dlq = common::consume(
        &bootstrap,
        &[format!("{topic}.dlq")],
        1,
        Duration::from_secs(10),
    );
    assert_eq!(dlq.len(), 1);
    let v = &dlq[0].value;
    assert_eq!(v["original_topic"], topic.as_str());
    assert_eq!(v["original_event_truncated"], true, "{}", v["error"]);
    let original = v["original_event"]
        .as_str()
        .expect("a truncated envelope is carried as a string");
    assert!(original.starts_with('{'), "{}", &original[..80]);
    assert!(original.contains(AUDIT), "{}", &original[..200]);
    assert!(original.len() < MAX, "{} bytes", original.len());
    assert!(
        serde_json::from_str::<Value>(original).is_err(),
        "cut short, so no longer a JSON document"
    );
    assert!(original.contains("xxxx"));
    assert_eq!(v["error"]["class"], "NON_RETRYABLE_VALIDATION");
    assert_eq!(v["error"]["code"], "MessageSizeTooLarge");
    assert_eq!(v["error"]["retryable"], false);
    let h = &dlq[0].headers;
    assert_eq!(h["x-dlq-error-code"], "MessageSizeTooLarge");
    assert_eq!(h["x-dlq-error-class"], "NON_RETRYABLE_VALIDATION");
    assert_eq!(h["x-dlq-original-topic"], topic);
    assert_eq!(h["x-event-type"], AUDIT);
    assert_eq!(dlq[0].key.as_deref(), Some("acme"));
}

/// The segment files of a spool directory, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("segment-") && n.ends_with(".spool"))
        })
        .collect();
    files.sort();
    files
}

/// Valid spool records, made by a pipeline whose broker is unreachable: it spools them at
/// shutdown. Read back (and removed) through the public spool API.
fn spooled_records(n: usize) -> Vec<WireRecord> {
    let addr = common::closed_port();
    let dir = common::spool_dir();
    let prefix = common::unique_prefix("torn");
    let (layer, guard) = common::builder(&addr, &prefix, dir.path()).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..n {
            tracing_omninode::audit!(
                action = "document.update",
                actor = "alice",
                resource = format!("doc/{i}"),
                outcome = "success"
            );
        }
    });
    let report = guard.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(report.spooled, n as u64, "{report:?}");
    let out = common::drain_spool(dir.path());
    assert_eq!(out.len(), n);
    out
}

/// Appends `records` to a new segment of the spool in `dir`; returns the segment file and
/// the byte offset at which each record's frame starts.
fn write_segment(dir: &Path, records: &[WireRecord]) -> (PathBuf, Vec<u64>) {
    let before = segment_files(dir);
    let mut spool = Spool::open(dir, SpoolLimits::default()).unwrap();
    let mut offsets = Vec::new();
    let mut at = 0u64;
    for r in records {
        offsets.push(at);
        let bytes = r.to_bytes();
        spool.append(&bytes).unwrap();
        at += bytes.len() as u64 + RECORD_OVERHEAD;
    }
    spool.sync().unwrap();
    drop(spool);
    let after = segment_files(dir);
    assert_eq!(after.len(), before.len() + 1, "one new segment");
    let file = after.last().unwrap().clone();
    assert_eq!(fs::metadata(&file).unwrap().len(), at);
    (file, offsets)
}

#[test]
fn torn_and_damaged_spool_records_are_skipped_and_the_rest_replayed() {
    let prefix = common::unique_prefix("replay");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let topic = format!("{prefix}{AUDIT}");

    // Ten valid records, re-targeted at this test's topic.
    let mut records = spooled_records(10);
    for r in &mut records {
        r.topic = topic.clone();
    }
    let resource = |r: &WireRecord| -> String {
        let v: Value = serde_json::from_str(&r.value).unwrap();
        v["payload"]["resource"].as_str().unwrap().to_owned()
    };

    let dir = common::spool_dir();
    // Segment 1: five records, the payload of the third damaged (a flipped byte).
    let (seg1, offsets1) = write_segment(dir.path(), &records[..5]);
    let mut data = fs::read(&seg1).unwrap();
    let flip = offsets1[2] as usize + RECORD_OVERHEAD as usize + 20;
    data[flip] ^= 0x20;
    fs::write(&seg1, &data).unwrap();
    // Segment 2: five records, the last torn in the middle (a crash during the write).
    let (seg2, offsets2) = write_segment(dir.path(), &records[5..]);
    let len = fs::metadata(&seg2).unwrap().len();
    let last = offsets2[4];
    OpenOptions::new()
        .write(true)
        .open(&seg2)
        .unwrap()
        .set_len(last + (len - last) / 2)
        .unwrap();

    let (layer, guard) = common::builder(&bootstrap, &prefix, dir.path())
        .build()
        .unwrap();
    let m = common::wait_for(&guard, Duration::from_secs(20), |m| {
        m.replayed >= 8 && m.spool_corrupt >= 2
    });
    assert_eq!((m.replayed, m.delivered), (8, 8), "{m:?}");
    assert_eq!(
        m.spool_corrupt, 2,
        "one damaged record, one torn tail: {m:?}"
    );
    let report = guard.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(report.delivered, 8, "{report:?}");
    // The layer owns the spool (events after shutdown still go there): let it go first.
    drop(layer);
    assert!(
        common::spool_is_empty(dir.path()),
        "replayed segments are removed"
    );

    assert_eq!(
        common::records_on(&bootstrap, &topic),
        8,
        "exactly the intact records"
    );
    let got = common::consume(&bootstrap, &[topic], 8, Duration::from_secs(10));
    assert_eq!(got.len(), 8);
    let mut want: Vec<String> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2 && *i != 9)
        .map(|(_, r)| resource(r))
        .collect();
    let mut delivered: Vec<String> = got
        .iter()
        .map(|r| r.value["payload"]["resource"].as_str().unwrap().to_owned())
        .collect();
    // Oldest first: segment order, then append order.
    assert_eq!(delivered, want);
    delivered.sort();
    want.sort();
    assert_eq!(delivered, want);
    for r in &got {
        validate_envelope(&r.value).unwrap();
        let original = records
            .iter()
            .find(|o| o.header("x-event-id") == Some(r.headers["x-event-id"].as_str()))
            .expect("a spooled record");
        assert_eq!(r.key.as_deref(), Some(original.key.as_str()));
        for (k, v) in &original.headers {
            assert_eq!(
                r.headers.get(k.as_ref()).map(String::as_str),
                Some(v.as_ref()),
                "header {k}"
            );
        }
    }
}
