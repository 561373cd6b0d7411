//! No feedback loop (SPEC §5): with our layer and a `fmt` layer installed as the global
//! default, and `log` records bridged into tracing, the library never captures its own
//! events, librdkafka's logs or rdkafka's, and nothing recurses: the application topic holds
//! exactly the events the test emitted.
//!
//! It installs a global subscriber, so it is alone in its test binary.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::APP;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use tracing_subscriber::prelude::*;

/// Lines the `fmt` layer wrote, and how many of them came from librdkafka through `log`.
static FMT_LINES: AtomicU64 = AtomicU64::new(0);
static FMT_LIBRDKAFKA: AtomicU64 = AtomicU64::new(0);

struct CountingWriter;

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        FMT_LINES.fetch_add(text.matches('\n').count() as u64, Ordering::Relaxed);
        if text.contains("librdkafka") {
            FMT_LIBRDKAFKA.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_library_never_feeds_on_its_own_or_librdkafkas_events() {
    const MAIN_EVENTS: u64 = 1_500;
    const SMALL_STACK_EVENTS: u64 = 500;
    let prefix = common::unique_prefix("feedback");
    let mock = common::mock_cluster(&prefix, &[APP]);
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .build()
        .unwrap();

    // Global default: registry + fmt + our layer; `init` also installs the `log` bridge
    // (tracing-log), so rdkafka's and librdkafka's `log` records become tracing events.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(|| CountingWriter),
        )
        .with(layer)
        .init();

    // librdkafka noise on its own threads: a client with the default context (which logs
    // through `log`, target "librdkafka") that cannot reach its broker.
    let closed_addr = common::closed_port();
    let noisy: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &closed_addr)
        .set("message.timeout.ms", "1000")
        .create()
        .expect("noisy producer");
    noisy
        .send(BaseRecord::<str, str>::to("nowhere").payload("x"))
        .unwrap();

    // Events the layer must ignore, emitted on an application thread.
    for i in 0..50 {
        tracing::info!(target: "rdkafka::producer::base_producer", i, "rdkafka internal");
        tracing::warn!(target: "rdkafka", i, "rdkafka internal");
        tracing::error!(target: "librdkafka", i, "librdkafka: FAIL connection refused");
        tracing::info!(target: "librdkafka::broker", i, "librdkafka internal");
        tracing::warn!(target: "tracing_omninode::worker", i, "our own log");
        tracing::info!(target: "tracing_omninode", i, "our own log");
    }
    // The application's own events: all captured, once.
    for i in 0..MAIN_EVENTS {
        tracing::info!(i, "application event {i}");
    }
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(|| {
            let span = tracing::info_span!("request", request_id = 7);
            let _e = span.enter();
            for i in 0..SMALL_STACK_EVENTS {
                tracing::warn!(i, "from a small stack {i}");
            }
        })
        .unwrap()
        .join()
        .expect("no stack overflow on a small-stack thread");

    // Let librdkafka fail its connection attempts and the message time out (more logs).
    let deadline = Instant::now() + Duration::from_secs(10);
    while FMT_LIBRDKAFKA.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        noisy.poll(Duration::from_millis(100));
    }
    let _ = noisy.flush(Duration::from_millis(1500));
    drop(noisy);
    assert!(
        FMT_LIBRDKAFKA.load(Ordering::Relaxed) > 0,
        "librdkafka logged through log → tracing (else this test proves nothing)"
    );

    let want = MAIN_EVENTS + SMALL_STACK_EVENTS;
    let report = guard.shutdown(Duration::from_secs(20)).unwrap();
    // fmt saw everything, ours included.
    assert!(FMT_LINES.load(Ordering::Relaxed) >= want + 300);

    let topic = format!("{prefix}{APP}");
    let got = common::consume_all(&bootstrap, &topic, Duration::from_secs(20));
    let n = got.len();
    let foreign: Vec<String> = got
        .iter()
        .filter(|r| r.value["payload"]["logger"] != "feedback")
        .map(|r| {
            format!(
                "{} {}",
                r.value["payload"]["logger"], r.value["payload"]["message"]
            )
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "{} captured events the test did not emit, e.g. {:#?}",
        foreign.len(),
        &foreign[..foreign.len().min(5)]
    );
    assert_eq!(n as u64, want, "exactly the test's events");
    assert_eq!(report.delivered, want, "{report:?}");
    assert_eq!(
        (report.dropped, report.spooled, report.dead_lettered),
        (0, 0, 0),
        "{report:?}"
    );
    let from_small_stack = got
        .iter()
        .filter(|r| r.value["payload"]["context"]["request_id"] == 7)
        .count() as u64;
    assert_eq!(from_small_stack, SMALL_STACK_EVENTS);
}
