mod common;
use rdkafka::mocking::MockCluster;
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn scratch_rss() {
    let down = std::env::var("DOWN").is_ok();
    let n: usize = std::env::var("NN")
        .map(|v| v.parse().unwrap())
        .unwrap_or(300_000);
    let prefix = common::unique_prefix("rss");
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(&format!("{prefix}omninode.logging.application.v1"), 1, 1)
        .unwrap();
    let bootstrap = mock.bootstrap_servers();
    let spool = common::spool_dir();
    let (layer, guard) = common::builder(&bootstrap, &prefix, spool.path())
        .queue_capacity(16usize)
        .build()
        .unwrap();
    if down {
        mock.broker_down(1).unwrap();
    }
    let t = Instant::now();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..2000 {
            tracing::info!(i, "warm up event number {i}");
        }
        std::thread::sleep(Duration::from_millis(500));
        let before = rss_kib();
        let mut peak = before;
        for i in 0..n {
            tracing::info!(
                i,
                user = "bob",
                "flood event number {i} with some text to make it realistic"
            );
            if i % 10_000 == 0 {
                peak = peak.max(rss_kib());
            }
        }
        let m = guard.metrics();
        eprintln!(
            "flood {:?}: rss before {before} KiB, peak {peak}, after {} ; {m:?}",
            t.elapsed(),
            rss_kib()
        );
        std::thread::sleep(Duration::from_secs(3));
        eprintln!("3s later rss {} ; {:?}", rss_kib(), guard.metrics());
    });
    let t = Instant::now();
    let r = guard.shutdown(Duration::from_secs(10));
    eprintln!("shutdown {:?} {r:?} rss {}", t.elapsed(), rss_kib());
}
