//! The worker survives a panic while processing one record: that record goes to the DLQ
//! with the panic message as its error (code `WorkerPanic`), a counter says so, and the
//! records around it are delivered. (Fault injected with a `fail` point; feature
//! `failpoints`.)
#![cfg(feature = "failpoints")]

mod common;

use std::time::Duration;

use common::AUDIT;
use tracing_subscriber::prelude::*;

#[test]
fn a_record_whose_processing_panics_is_dead_lettered_and_the_pipeline_goes_on() {
    let scenario = fail::FailScenario::setup();
    let prefix = common::unique_prefix("panic");
    let mock = common::mock(&prefix);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();
    // The second record's assembly panics, the others go through.
    fail::cfg("omninode::assemble", "1*off->1*panic(assembly bug)->off").unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..3 {
            common::audit(&format!("doc/{i}"));
        }
    });
    let m = common::wait_for(&guard, Duration::from_secs(10), |m| {
        m.delivered == 2 && m.dead_lettered == 1
    });
    assert_eq!(
        (m.delivered, m.dead_lettered, m.worker_panics),
        (2, 1, 1),
        "{m:?}"
    );
    assert!(!m.worker_stopped);

    let dlq = common::consume_all(
        &bootstrap,
        &format!("{prefix}{AUDIT}.dlq"),
        Duration::from_secs(10),
    );
    assert_eq!(dlq.len(), 1);
    let error = &dlq[0].value["error"];
    assert_eq!(error["code"], "WorkerPanic", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("assembly bug"),
        "{error}"
    );
    assert_eq!(dlq[0].value["original_event"]["sequence"], 2);
    let delivered = common::consume_all(
        &bootstrap,
        &format!("{prefix}{AUDIT}"),
        Duration::from_secs(10),
    );
    let resources: Vec<_> = delivered
        .iter()
        .map(|r| r.value["payload"]["resource"].clone())
        .collect();
    assert_eq!(resources, ["doc/0", "doc/2"]);
    guard.shutdown(Duration::from_secs(5)).unwrap();
    scenario.teardown();
}
