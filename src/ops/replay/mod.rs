//! `dlq replay`: re-publish what a DLQ holds to the topic it was bound for.
//!
//! Each DLQ record's `original_event` goes to its `original_topic`, byte for byte as the
//! DLQ holds it, under the record's key, with the record's headers minus the `x-dlq-*`
//! ones and with `x-replay-count` one more than the record carried. A record is refused
//! (reported, counted, never re-sent) when it is not a DLQ record, names an original
//! topic that is not this DLQ's catalog twin, holds a truncated or non-JSON original,
//! holds an envelope that fails validation, or was replayed [`Request::max_replays`]
//! times already. A record whose original topic does not exist stops the replay with
//! [`OpsError::NoSuchTopic`]: create the topic, run again, and it resumes there.
//!
//! The replay reads under its own consumer group and commits, synchronously, the highest
//! offset below which every record is settled (acknowledged by the broker, refused or
//! skipped by a filter), right after each acknowledgement. An interrupted replay resumes
//! there: it re-sends nothing whose offset was committed, so only a record acknowledged
//! in the instant before its commit (one commit round trip) can be sent twice.

mod progress;
mod rules;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::contract::dlq::DlqRecord;
use crate::contract::wire::WireRecord;
use crate::kafka::client::{ClientOptions, OpsError};
use crate::kafka::consumer::{list_topics, Reader, Start};
use crate::kafka::producer::{Producer, Refused};
use crate::ops::POLL;

use progress::Progress;
pub use rules::{
    decide, decide_parsed, default_group, Decision, Refusal, Request, DEFAULT_MAX_REPLAYS,
};

/// What a replay reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// The broker acknowledged the re-sent record and the group's offset is committed.
    Replayed {
        /// The DLQ record.
        from: &'a str,
        /// The topic it went to.
        to: &'a str,
        /// Its `x-replay-count`.
        count: u32,
    },
    /// Would be re-sent (dry run).
    WouldReplay {
        /// The DLQ record.
        from: &'a str,
        /// The topic it would go to.
        to: &'a str,
    },
    /// Refused.
    Refused {
        /// The DLQ record.
        from: &'a str,
        /// Why.
        why: &'a Refusal,
    },
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The consumer group whose offsets it used.
    pub group: String,
    /// Records read from the DLQ.
    pub read: u64,
    /// Re-sent and acknowledged (dry run: would be re-sent).
    pub replayed: u64,
    /// Refused, by [`Refusal::kind`].
    pub refused: BTreeMap<&'static str, u64>,
    /// Outside the filters.
    pub skipped: u64,
    /// DLQ records by `(class, code)`.
    pub histogram: BTreeMap<(String, String), u64>,
}

impl Summary {
    /// Records refused, all kinds.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }
}

/// Where a re-sent record came from, carried with it to its delivery report.
struct Origin {
    topic: String,
    partition: i32,
    offset: i64,
    position: String,
    to: String,
    count: u32,
}

/// Paces re-sends to a rate without blocking the loop (acknowledgements keep being
/// handled and committed while a record waits for its slot).
struct Pace {
    every: Option<Duration>,
    next: Instant,
}

impl Pace {
    /// Takes the next slot if it has come.
    fn take(&mut self) -> bool {
        let Some(every) = self.every else {
            return true;
        };
        let now = Instant::now();
        if now < self.next {
            return false;
        }
        self.next = now + every;
        true
    }
}

/// A re-send waiting for its slot.
type Waiting = (WireRecord, Origin);

/// The state of one replay run.
struct Run<'a> {
    req: &'a Request,
    reader: Reader,
    producer: Option<Producer<Origin>>,
    pace: Pace,
    progress: Progress,
    summary: Summary,
    in_flight: usize,
    waiting: Option<Waiting>,
    /// A condition the operator must fix first (a missing original topic): the replay
    /// stops before that record, so a run after the fix resumes with it.
    blocked: Option<OpsError>,
}

impl Run<'_> {
    /// Takes one record from the DLQ and decides about it; a re-send waits in `waiting`.
    fn take(
        &mut self,
        wait: Duration,
        exists: &dyn Fn(&str) -> bool,
        report: &mut impl FnMut(Event<'_>),
    ) -> Result<(), OpsError> {
        let Some(rec) = self.reader.next(wait)? else {
            return Ok(());
        };
        let s = &mut self.summary;
        s.read += 1;
        self.progress.read(&rec.topic, rec.partition, rec.offset);
        let decision = match DlqRecord::parse(rec.value.as_deref().unwrap_or_default()) {
            Ok(d) => {
                let class_code = (d.error.class.clone(), d.error.code.clone());
                *s.histogram.entry(class_code).or_default() += 1;
                decide_parsed(&rec, d, self.req, exists)
            }
            Err(e) => Decision::Refuse(Refusal::NotDlqRecord(e.to_string())),
        };
        match decision {
            Decision::Skip => {
                s.skipped += 1;
                self.progress.settle(&rec.topic, rec.partition, rec.offset);
            }
            Decision::Refuse(Refusal::MissingTopic(t)) => {
                self.blocked = Some(OpsError::NoSuchTopic(t));
            }
            Decision::Refuse(why) => {
                *s.refused.entry(why.kind()).or_default() += 1;
                self.progress.settle(&rec.topic, rec.partition, rec.offset);
                report(Event::Refused {
                    from: &rec.position(),
                    why: &why,
                });
            }
            Decision::Send(out, _) if self.producer.is_none() => {
                s.replayed += 1;
                self.progress.settle(&rec.topic, rec.partition, rec.offset);
                report(Event::WouldReplay {
                    from: &rec.position(),
                    to: &out.topic,
                });
            }
            Decision::Send(out, count) => {
                let origin = Origin {
                    topic: rec.topic.clone(),
                    partition: rec.partition,
                    offset: rec.offset,
                    position: rec.position(),
                    to: out.topic.clone(),
                    count,
                };
                self.waiting = Some((out, origin));
            }
        }
        Ok(())
    }

    /// Handles delivery reports: acknowledged records are settled, committed, then
    /// reported; a refused re-send ends the run after committing what was acknowledged.
    fn acknowledge(
        &mut self,
        wait: Duration,
        report: &mut impl FnMut(Event<'_>),
    ) -> Result<(), OpsError> {
        let mut acked = Vec::new();
        let mut failed = None;
        if let Some(p) = &self.producer {
            p.wait_report(wait);
            while let Some((origin, outcome)) = p.next_report() {
                self.in_flight -= 1;
                match outcome {
                    Ok(()) => {
                        self.progress
                            .settle(&origin.topic, origin.partition, origin.offset);
                        self.summary.replayed += 1;
                        acked.push(origin);
                    }
                    Err(e) => {
                        failed.get_or_insert(format!(
                            "{} -> {}: {} {}: {}",
                            origin.position, origin.to, e.class, e.code, e.message
                        ));
                    }
                }
            }
        }
        let ready = self.progress.committable();
        if self.producer.is_some() {
            self.reader.commit(&ready)?;
        }
        for o in &acked {
            report(Event::Replayed {
                from: &o.position,
                to: &o.to,
                count: o.count,
            });
        }
        match failed {
            None => Ok(()),
            Some(why) => Err(OpsError::Kafka {
                what: "re-publishing",
                message: format!(
                    "{why}; nothing from that record on was committed: fix the cause and run the replay again"
                ),
            }),
        }
    }
}

/// Replays `req.dlq_topic` up to its end (or `max`, or until `stop`), calling `report`
/// for every record re-sent (after its offset is committed) or refused. A re-send the
/// broker refuses stops the replay with an error after committing what was acknowledged.
pub fn run(
    opts: &ClientOptions,
    req: &Request,
    stop: &AtomicBool,
    mut report: impl FnMut(Event<'_>),
) -> Result<Summary, OpsError> {
    let topics = list_topics(opts)?;
    let exists = |t: &str| topics.iter().any(|i| i.name == t);
    if !exists(&req.dlq_topic) {
        return Err(OpsError::NoSuchTopic(req.dlq_topic.clone()));
    }
    let group = req.group.clone().unwrap_or_else(|| default_group(req));
    let topic = std::slice::from_ref(&req.dlq_topic);
    let reader = if req.dry_run {
        Reader::open(opts, topic, Start::Beginning, false)?
    } else {
        Reader::open_group(opts, topic, &group, Start::Beginning)?
    };
    let producer = if req.dry_run {
        None
    } else {
        let config = opts
            .pipeline_builder("omninode-events-replay")
            .message_timeout(opts.timeout.max(Duration::from_secs(5)))
            .resolve()
            .map_err(|e| OpsError::Config(e.to_string()))?;
        let diag = std::sync::Arc::new(crate::diagnostics::Diagnostics::of(&config));
        Some(Producer::new(&config, diag).map_err(OpsError::Config)?)
    };
    let mut run = Run {
        req,
        reader,
        producer,
        pace: Pace {
            every: req
                .rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(1.0 / r)),
            next: Instant::now(),
        },
        progress: Progress::default(),
        summary: Summary {
            group,
            ..Summary::default()
        },
        in_flight: 0,
        waiting: None,
        blocked: None,
    };
    loop {
        let stopped = stop.load(Ordering::Relaxed);
        if !stopped && run.waiting.is_some() && run.pace.take() {
            let (out, origin) = run.waiting.take().expect("checked above");
            send(
                run.producer.as_ref().expect("only re-sends wait"),
                &out,
                origin,
            )?;
            run.in_flight += 1;
        }
        let more = !stopped
            && run.blocked.is_none()
            && run.waiting.is_none()
            && !run.reader.finished()
            && req.max.is_none_or(|m| run.summary.read < m);
        if more {
            let wait = if run.in_flight > 0 {
                Duration::ZERO
            } else {
                POLL
            };
            run.take(wait, &exists, &mut report)?;
        }
        let busy = run.in_flight > 0 || (run.waiting.is_some() && !stopped);
        if !more && !busy {
            run.acknowledge(Duration::ZERO, &mut report)?;
            break;
        }
        let wait = if more {
            Duration::ZERO
        } else {
            Duration::from_millis(20)
        };
        run.acknowledge(wait, &mut report)?;
    }
    match run.blocked {
        Some(e) => Err(e),
        None => Ok(run.summary),
    }
}

/// Sends one record, waiting while librdkafka's queue is full.
fn send(p: &Producer<Origin>, record: &WireRecord, origin: Origin) -> Result<(), OpsError> {
    let mut opaque = Box::new(origin);
    loop {
        match p.send(record, opaque) {
            Ok(()) => return Ok(()),
            Err(Refused::QueueFull(back)) => {
                opaque = back;
                // The callback thread frees room as acknowledgements come; the reports
                // themselves are taken by `acknowledge`, so do not wait on them here.
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(Refused::Failed(o, e)) => {
                return Err(OpsError::Kafka {
                    what: "re-publishing",
                    message: format!(
                        "{} -> {}: {} {}: {}",
                        o.position, o.to, e.class, e.code, e.message
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
