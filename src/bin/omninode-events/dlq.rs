//! `dlq stats`, `dlq monitor`, `dlq replay`.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Args, Subcommand};
use tracing_omninode::ops::{self, monitor, replay, stats, ClientOptions};
use tracing_omninode::Timestamp;
use tracing_subscriber::prelude::*;

use crate::args::{duration, time, Global};
use crate::{stop_flag, CliError, Outcome, EXIT_CODES};

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// Count what every *.dlq topic under the prefix holds, by error class and code, with
    /// the oldest and newest dead_lettered_at.
    #[command(after_help = EXIT_CODES)]
    Stats,
    /// Watch every *.dlq topic and alert when one grows.
    ///
    /// A topic that grew by --threshold records since its last alert, once --cooldown has
    /// passed, gives a line on stderr and an omninode.logging.application.v1 event with
    /// code OMNINODE_DLQ_THRESHOLD (topic, growth, classes) sent through the crate's own
    /// pipeline. Runs until interrupted (Ctrl-C, SIGTERM), then flushes and exits 0.
    #[command(after_help = EXIT_CODES)]
    Monitor(MonitorArgs),
    /// Re-publish dead-lettered events to the topic they were bound for.
    ///
    /// Each record's original event goes to its original topic with its key and headers
    /// (minus x-dlq-*), plus x-replay-count. Truncated originals, invalid envelopes,
    /// foreign or missing original topics, records that are not DLQ records and records
    /// replayed --max-replays times are refused and reported (exit 1). Offsets of the
    /// consumer group are committed only after the broker acknowledged the re-published
    /// record: an interrupted replay resumes where it stopped.
    #[command(after_help = EXIT_CODES)]
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The DLQ topic (event type + .dlq; the prefix is added).
    #[arg(long, value_name = "X.dlq")]
    topic: String,
    /// Only records of this error class (e.g. NON_RETRYABLE_POLICY).
    #[arg(long, value_name = "C")]
    class: Option<String>,
    /// Only records of this error code (e.g. TopicAuthorizationFailed).
    #[arg(long, value_name = "C")]
    code: Option<String>,
    /// Only records dead-lettered at or after this time (RFC 3339, or an age like -2h).
    #[arg(long, value_name = "T", value_parser = time, allow_hyphen_values = true)]
    since: Option<std::time::SystemTime>,
    /// Stop after N records taken from the DLQ.
    #[arg(long, value_name = "N")]
    max: Option<u64>,
    /// At most N re-sends per second (N/s or N).
    #[arg(long, value_name = "N/s", value_parser = rate)]
    rate: Option<f64>,
    /// Send and commit nothing; print what would happen and a histogram of classes and codes.
    #[arg(long)]
    dry_run: bool,
    /// Consumer group (default: `omninode-events-replay.<topic>`, plus a hash of the filters).
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Refuse records already replayed this many times.
    #[arg(long, value_name = "N", default_value_t = replay::DEFAULT_MAX_REPLAYS)]
    max_replays: u32,
}

#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// Records of growth since a topic's last alert that make a new alert.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    threshold: u64,
    /// Least time between two alerts of one topic.
    #[arg(long, default_value = "15m", value_parser = duration)]
    cooldown: Duration,
    /// How often to check the rule and look for new DLQ topics.
    #[arg(long, default_value = "30s", value_parser = duration)]
    interval: Duration,
}

/// `N/s` or `N`, a positive number of records per second.
fn rate(s: &str) -> Result<f64, String> {
    let n = s.trim().strip_suffix("/s").unwrap_or(s.trim());
    match n.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!("`{s}` is not a rate; write e.g. 50/s")),
    }
}

pub(crate) fn run(
    opts: &ClientOptions,
    global: &Global,
    cmd: &DlqCommand,
) -> Result<Outcome, CliError> {
    match cmd {
        DlqCommand::Replay(a) => run_replay(opts, global, a),
        DlqCommand::Stats => run_stats(opts, global),
        DlqCommand::Monitor(a) => run_monitor(opts, global, a),
    }
}

fn run_replay(opts: &ClientOptions, global: &Global, a: &ReplayArgs) -> Result<Outcome, CliError> {
    let topic = ops::topic_name(&global.topic_prefix, &a.topic);
    if !topic.ends_with(".dlq") {
        return Err(CliError::Usage(format!(
            "--topic {} is not a DLQ topic: name the .dlq topic to replay (e.g. omninode.logging.audit.v1.dlq)",
            a.topic
        )));
    }
    let mut req = replay::Request::new(topic, global.topic_prefix.clone());
    req.class = a.class.clone();
    req.code = a.code.clone();
    req.since = a.since.map(Timestamp::from_system_time);
    req.max = a.max;
    req.rate = a.rate;
    req.dry_run = a.dry_run;
    req.group = a.group.clone();
    req.max_replays = a.max_replays;
    let stop = stop_flag();
    let summary = replay::run(opts, &req, &stop, |event| match event {
        replay::Event::Replayed { from, to, count } => {
            println!("replayed {from} -> {to} (x-replay-count {count})")
        }
        replay::Event::WouldReplay { from, to } => println!("would replay {from} -> {to}"),
        replay::Event::Refused { from, why } => println!("refused  {from}: {why}"),
    })?;
    if a.dry_run {
        print_histogram(&summary.histogram);
    }
    let refused: Vec<String> = summary
        .refused
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    println!(
        "{}: read {}, {} {}, refused {}{}, skipped by filters {}; group {}",
        req.dlq_topic,
        summary.read,
        if a.dry_run {
            "would replay"
        } else {
            "replayed"
        },
        summary.replayed,
        summary.refused_total(),
        if refused.is_empty() {
            String::new()
        } else {
            format!(" ({})", refused.join(", "))
        },
        summary.skipped,
        summary.group,
    );
    Ok(if summary.refused_total() > 0 {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}

/// Counts by class and code, widest first.
fn print_histogram(h: &BTreeMap<(String, String), u64>) {
    let mut rows: Vec<_> = h.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let most = rows.first().map_or(1, |r| *r.1);
    for ((class, code), n) in rows {
        let bar = "#".repeat(((n * 40).div_ceil(most)) as usize);
        println!("{n:>7}  {class:<26} {code:<28} {bar}");
    }
}

fn run_stats(opts: &ClientOptions, global: &Global) -> Result<Outcome, CliError> {
    let s = stats::run(opts, &global.topic_prefix, &stop_flag())?;
    let time = |t: Option<Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
    println!(
        "{:<50} {:<26} {:<26} {:>7}  {:<27}  {:<27}",
        "TOPIC", "CLASS", "CODE", "COUNT", "OLDEST", "NEWEST"
    );
    for ((topic, class, code), row) in &s.rows {
        println!(
            "{topic:<50} {class:<26} {code:<26} {:>7}  {:<27}  {:<27}",
            row.count,
            time(row.oldest),
            time(row.newest)
        );
    }
    let empty = s
        .topics
        .iter()
        .filter(|t| !s.rows.keys().any(|(r, _, _)| r == *t))
        .count();
    println!(
        "{} records in {} DLQ topics ({empty} empty)",
        s.total(),
        s.topics.len()
    );
    Ok(Outcome::Ok)
}

fn run_monitor(
    opts: &ClientOptions,
    global: &Global,
    a: &MonitorArgs,
) -> Result<Outcome, CliError> {
    let thresholds = monitor::Thresholds {
        threshold: a.threshold,
        cooldown: a.cooldown,
    };
    // The alerts travel through the crate's own pipeline, to the application-log topic.
    let (layer, guard) = opts
        .pipeline_builder("omninode-events")
        .topic_prefix(global.topic_prefix.clone())
        .build()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let stop = stop_flag();
    let result = monitor::run(
        opts,
        &global.topic_prefix,
        thresholds,
        a.interval,
        &stop,
        |topics| eprintln!("omninode-events: watching {} DLQ topics", topics.len()),
        |alert| {
            eprintln!(
                "omninode-events: ALERT {} grew by {} records ({}) [{}]",
                alert.topic,
                alert.growth,
                alert.classes_text(),
                monitor::ALERT_CODE
            );
            tracing::dispatcher::with_default(&dispatch, || {
                tracing_omninode::emit(alert.event(&thresholds))
            });
        },
    );
    match guard.shutdown(Duration::from_secs(10)) {
        Ok(report) => eprintln!("omninode-events: monitor stopped ({report})"),
        Err(e) => eprintln!("omninode-events: monitor stopped; the alert pipeline: {e}"),
    }
    result?;
    Ok(Outcome::Ok)
}
