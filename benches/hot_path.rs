//! Caller-thread cost of one `info!` with 5 fields inside a 2-field span, side by side:
//!
//! - (a) `registry` only (the floor: span lookup, no output);
//! - (b) `registry` + the OmniNode layer (broker reachable: embedded mock cluster);
//! - (b') the same with the broker unreachable (must not change: the caller never waits on
//!   the network);
//! - (c) `registry` + `fmt().json()` writing through `tracing_appender::non_blocking`;
//! - (d) an `audit!` (a guaranteed event) through the layer, in batches that always find
//!   queue room (the queue is drained, untimed, between batches): the caller's own cost.
//!
//! - (e) a `debug!` with 3 fields, filtered out (the layer is at INFO), and (f) a
//!   dependency's TRACE span with 2 fields (created, entered, left, closed), each with
//!   registry only, registry + the layer as `build()` returns it (it never disables a
//!   callsite, so that other layers keep their events), and registry + the layer behind its
//!   own per-layer filter (`OmniNodeLayer::filtered`).
//!
//! Goal: (b) ≤ 0.2 × (c), (b') ≈ (b), (d) within 10 % of the code before the write-ahead
//! spool; (e) and (f) with the layer ≤ 2 × registry only.
//!
//! Last measured on 2026-12-04 (2-core VM, `cargo bench --bench hot_path`), side by side with
//! the code before that day's renovation and write-ahead spool (`b8f5a42`, this same file),
//! in the quietest of three runs:
//!
//! | case | this code | before |
//! |---|---|---|
//! | (a) registry only | 10.1 ns | 9.8 ns |
//! | (b) registry + OmniNode layer, broker up | 251 ns (224-423 over 3 runs) | 257 ns (257-279) |
//! | (b') registry + OmniNode layer, broker unreachable | 223 ns | 212 ns |
//! | (c) registry + `fmt().json()` via `non_blocking` | 2.83 µs | 3.48 µs |
//! | (d) `audit!`, always room in the queue | 273 ns (273-649) | 369 ns (369-462) |
//!
//! Cases (e) and (f), measured on 2026-12-04 (`cargo bench --bench hot_path -- '^(e_|f_)'`,
//! one run, load average about 3 on the 2 cores: another build was running):
//!
//! | case | registry only | + layer as built | + layer, `filtered()` |
//! |---|---|---|---|
//! | (e) filtered-out `debug!` | 9.9 ns | 14.5 ns (1.47 ×) | 1.9 ns (0.20 ×) |
//! | (f) a dependency's TRACE span | 114 ns | 162 ns (1.42 ×) | 2.0 ns (0.02 ×) |
//!
//! Second measurement of the day, a quiet machine (`cargo bench --bench hot_path`, after
//! issue 14's capture changes): (a) 9.13 ns, (b) 248 ns, (b') 245 ns, (c) 2.88 µs, (e)
//! 9.03 / 12.5 / 2.11 ns, (f) 127 (noisy: 98-195) / 122 / 1.93 ns. Then (d) side by side
//! with and without the `CompactString` field values (`c73a884`), two rounds each: 333 and
//! 346 ns with, 485 and 440 ns without (the spool-less code before it: 369 ns). So issue
//! 14's capture work made `audit!` slower on the caller and inline text won it back: (d) is
//! within 10 % of the code before the write-ahead spool again.
//!
//! Third measurement, 2026-12-04 evening, after issue 15's caller changes (striped
//! counters, inline fields; the VM was slower that evening: (c) 4.05 µs against 2.88 µs):
//! (a) 10.2 ns, (b) 376 ns, (b') 307 ns, (c) 4.05 µs, (d) 396 ns, (e) 9.43 / 13.0 / 1.70 ns,
//! (f) 133 / 138 / 2.64 ns. (b) / (c) = 0.093. (d) side by side with the code before that
//! session (`fa8584e`), alternating builds in one sitting: 428, 453, 451 and 499 ns before,
//! 396, 418 and 451 ns with the final code (the inline fields removed the one allocation an
//! `audit!` made; with only the striped counters it measured 461-525 ns).
//!
//! Fourth measurement, 2026-12-05 (`cargo bench --bench hot_path`, after this session's
//! caller work: each thread reuses its last span context, the captured event is built in
//! place and is 320 bytes, messages formatted one layer shallower): (a) 9.33 ns, (b) 213 ns,
//! (b') 181 ns, (c) 3.50 µs, (d) 250 ns, (e) 9.00 / 11.9 / 1.64 ns, (f) 111-170 (noisy:
//! criterion's interval 111 ns-1.6 µs in the first run) / 117-122 / 1.68-1.87 ns.
//! (b) / (c) = 0.061. These figures are of a first version of the context reuse that
//! moved a global epoch on every span close (one atomic add, which (f) includes); the final
//! code retires a captured span's context when its data is dropped instead (see the
//! README).
//!
//! Behind its filter the layer is the only one interested, so tracing's callsite cache
//! turns both into one atomic load, cheaper than the registry alone (which enables
//! everything).
//!
//! (b) / (c) = 0.09 (goal ≤ 0.2); (b') ≈ (b); (d) is not slower. The spread is other builds
//! running on the machine during the noisier runs. In (b) the queue may be full part of the
//! time (the worker is slower than a tight loop of `info!`), so the figure mixes successful
//! pushes and counted drops; both are the caller's whole cost. (d) drains the queue between
//! batches of 1000 (untimed), so it is only the caller's capture and push.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rdkafka::mocking::MockCluster;
use tracing_subscriber::prelude::*;

fn log_one() {
    tracing::info!(
        user_id = 42u64,
        route = "/v1/orders",
        status = 200u64,
        latency_ms = 12.5f64,
        cached = true,
        "request served"
    );
}

fn bench_in<S>(c: &mut Criterion, name: &str, subscriber: S)
where
    S: tracing::Subscriber + Send + Sync + 'static,
{
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", tenant_id = "acme", request_id = "r-1");
        let _e = span.enter();
        c.bench_function(name, |b| b.iter(log_one));
    });
}

fn omninode(
    bootstrap: &str,
    dir: &std::path::Path,
) -> (tracing_omninode::OmniNodeLayer, tracing_omninode::Guard) {
    tracing_omninode::builder()
        .ignore_env()
        .bootstrap_servers(bootstrap)
        .service_name("bench")
        .spool_dir(dir)
        .queue_capacity(1usize << 16)
        .message_timeout(Duration::from_secs(2))
        .build()
        .expect("pipeline")
}

fn hot_path(c: &mut Criterion) {
    bench_in(c, "a_registry_only", tracing_subscriber::registry());

    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("omninode.logging.application.v1", 1, 1)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = omninode(&mock.bootstrap_servers(), dir.path());
    bench_in(
        c,
        "b_registry_plus_omninode",
        tracing_subscriber::registry().with(layer),
    );
    let _ = guard.shutdown(Duration::from_secs(5));

    // An audit event: guaranteed (waits for queue room, written ahead to the spool on the
    // worker); the caller's cost is capture and push.
    mock.create_topic("omninode.logging.audit.v1", 1, 1)
        .unwrap();
    let dir_audit = tempfile::tempdir().unwrap();
    let (layer, guard) = omninode(&mock.bootstrap_servers(), dir_audit.path());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span = tracing::info_span!("request", tenant_id = "acme", request_id = "r-1");
        let _e = span.enter();
        // Batches of 1000 that always find room: the queue is drained (untimed) between
        // batches, so this is the caller's own cost, never the worker's pace.
        c.bench_function("d_registry_plus_omninode_audit", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(1000);
                    let start = std::time::Instant::now();
                    for _ in 0..n {
                        tracing_omninode::audit!(
                            action = "order.refund",
                            actor = "alice",
                            resource = "order/42",
                            outcome = "success",
                            amount_cents = 1250u64
                        );
                    }
                    total += start.elapsed();
                    left -= n;
                    guard.flush(Duration::from_secs(30)).expect("flush");
                }
                total
            })
        });
    });
    let _ = guard.shutdown(Duration::from_secs(5));

    let dir2 = tempfile::tempdir().unwrap();
    let (layer, guard) = omninode("127.0.0.1:9", dir2.path());
    bench_in(
        c,
        "b_registry_plus_omninode_broker_down",
        tracing_subscriber::registry().with(layer),
    );
    let _ = guard.shutdown(Duration::from_secs(2));

    filtered_out(c, &mock);

    let (writer, _appender_guard) = tracing_appender::non_blocking(std::io::sink());
    bench_in(
        c,
        "c_registry_plus_fmt_json_non_blocking",
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().json().with_writer(writer)),
    );
}

/// A `debug!` with 3 fields, below the layer's level (INFO).
fn debug_one() {
    tracing::debug!(
        pool = "db",
        idle = 3u64,
        waited_us = 12u64,
        "connection checked out"
    );
}

/// A dependency's TRACE span with 2 fields: created, entered, left and closed.
fn dep_trace_span() {
    let span = tracing::trace_span!(target: "dep::pool", "checkout", pool = "db", slot = 3u64);
    let _e = span.enter();
}

/// (e) a filtered-out `debug!` and (f) a dependency's TRACE span, each with registry only,
/// registry + the layer as `build()` returns it, and registry + the layer behind its own
/// filter (`OmniNodeLayer::filtered`). Both inside a 2-field INFO span.
fn filtered_out(
    c: &mut Criterion,
    mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
) {
    for (case, f) in [
        ("e_debug", debug_one as fn()),
        ("f_dep_trace_span", dep_trace_span),
    ] {
        let run = |c: &mut Criterion, name: String, dispatch: tracing::Dispatch| {
            tracing::dispatcher::with_default(&dispatch, || {
                // Callsite interest is cached per callsite: rebuild it for this subscriber.
                tracing::callsite::rebuild_interest_cache();
                let span = tracing::info_span!("request", tenant_id = "acme", request_id = "r-1");
                let _e = span.enter();
                c.bench_function(&name, |b| b.iter(f));
            });
        };
        run(
            c,
            format!("{case}_registry_only"),
            tracing::Dispatch::new(tracing_subscriber::registry()),
        );
        let dir = tempfile::tempdir().unwrap();
        let (layer, guard) = omninode(&mock.bootstrap_servers(), dir.path());
        run(
            c,
            format!("{case}_registry_plus_omninode"),
            tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
        );
        let _ = guard.shutdown(Duration::from_secs(5));
        let dir = tempfile::tempdir().unwrap();
        let (layer, guard) = omninode(&mock.bootstrap_servers(), dir.path());
        run(
            c,
            format!("{case}_registry_plus_omninode_filtered"),
            tracing::Dispatch::new(tracing_subscriber::registry().with(layer.filtered())),
        );
        let _ = guard.shutdown(Duration::from_secs(5));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = hot_path
}
criterion_main!(benches);
