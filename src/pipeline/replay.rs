//! Replaying the spool (SPEC §4): when the broker is reachable (a delivery went through, or
//! a metadata probe answered), the oldest sealed segment none of whose write-ahead records
//! is in flight is read, and its unacknowledged records are sent again. Each one that
//! reaches a final state is acknowledged; the spool deletes a segment with its last ack.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::contract::catalog;
use crate::contract::dlq::DLQ_SUFFIX;
use crate::contract::wire::WireRecord;
use crate::metrics::Counters;
use crate::pipeline::worker::{InFlight, Origin, Worker};
use crate::spool::SegmentId;

/// Whether a spooled record may be replayed to `topic`: an OmniNode catalog topic, or its
/// `.dlq`, under this pipeline's prefix. Anything else in a spool file (planted by another
/// local user, or left by another configuration) is never sent.
fn is_replayable_topic(prefix: &str, topic: &str) -> bool {
    let Some(name) = topic.strip_prefix(prefix) else {
        return false;
    };
    let event_type = name.strip_suffix(DLQ_SUFFIX).unwrap_or(name);
    catalog::lookup(event_type).is_some()
}

pub(super) const PROBE_EVERY: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

impl Worker {
    /// Whether the cluster is reachable, probing it at most every [`PROBE_EVERY`].
    fn reachable(&mut self) -> bool {
        if self.healthy == Some(true) {
            return true;
        }
        if self.last_probe.is_some_and(|t| t.elapsed() < PROBE_EVERY) {
            return false;
        }
        self.last_probe = Some(Instant::now());
        if !self.producer.probe(PROBE_TIMEOUT) {
            self.healthy = Some(false);
            return false;
        }
        self.producer.clear_last_global();
        self.diag.connected();
        self.healthy = Some(true);
        true
    }

    /// The oldest segment that can be replayed now: sealed, with none of its write-ahead
    /// records in flight. The active segment is sealed for it once it holds a parked record
    /// and none of its records is in flight.
    fn replayable_segment(&mut self) -> Option<SegmentId> {
        // A segment must not be read with acknowledgements of its records still unwritten.
        self.flush_acks();
        let idle = |live: &HashMap<SegmentId, usize>, seg: &SegmentId| !live.contains_key(seg);
        let mut spool = self.spooler.lock();
        let oldest = spool.sealed_segments().find(|s| idle(&self.live, s));
        if oldest.is_some() {
            return oldest;
        }
        let active = spool.active_segment()?;
        if !self.parked_active || !idle(&self.live, &active) {
            return None;
        }
        spool.seal_active();
        self.parked_active = false;
        let seg = spool.sealed_segments().find(|s| idle(&self.live, s));
        seg
    }

    /// Replays the oldest replayable spool segment when nothing is being replayed and the
    /// broker is reachable.
    pub(super) fn maybe_replay(&mut self) {
        if !self.replay.is_empty() || self.shutting_down {
            return;
        }
        if self.replay_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let Some(seg) = self.replayable_segment() else {
            return;
        };
        if !self.reachable() {
            return;
        }
        let read = match self.spooler.lock().read_segment(seg) {
            Ok(read) => read,
            Err(_) => {
                // The file could not be read now (too many open files, EIO): keep it and
                // try again after a probe interval, never delete it for that.
                self.replay_after = Some(Instant::now() + PROBE_EVERY);
                return;
            }
        };
        Counters::add(&self.counters.spool_corrupt, read.corrupt);
        let prefix = &self.config.topic_prefix;
        let mut flights = Vec::with_capacity(read.records.len());
        for spooled in read.records {
            let record = match WireRecord::from_bytes(&spooled) {
                Some(r) if is_replayable_topic(prefix, &r.topic) => r,
                decoded => {
                    let counter = match decoded {
                        None => &self.counters.spool_corrupt,
                        Some(_) => &self.counters.spool_rejected,
                    };
                    Counters::add(counter, 1);
                    // Never sent, never read again.
                    self.spooler.ack(spooled.id);
                    continue;
                }
            };
            let is_dlq = record.topic.ends_with(DLQ_SUFFIX);
            let mut flight = InFlight::new(record, Origin::Replay(seg), is_dlq);
            flight.wal = Some(spooled.id);
            flights.push(flight);
        }
        if flights.is_empty() {
            return;
        }
        self.replay.insert(seg, flights.len());
        for flight in flights {
            self.send(flight);
        }
    }

    /// A record reached a final state; a replayed segment is removed once all of its
    /// records have.
    pub(super) fn resolve(&mut self, origin: Origin) {
        let Origin::Replay(seg) = origin else {
            return;
        };
        let Some(left) = self.replay.get_mut(&seg) else {
            return;
        };
        *left -= 1;
        if *left == 0 {
            // Every record of the segment is settled: delivered ones are acknowledged (the
            // spool deletes the segment with its last ack), failed ones wait in it.
            self.replay.remove(&seg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_catalog_topics_under_the_prefix_are_replayed() {
        let audit = "omninode.logging.audit.v1";
        assert!(is_replayable_topic("", audit));
        assert!(is_replayable_topic("p.", &format!("p.{audit}")));
        assert!(is_replayable_topic("p.", &format!("p.{audit}.dlq")));
        assert!(!is_replayable_topic("p.", audit));
        assert!(!is_replayable_topic("p.", &format!("q.{audit}")));
        assert!(!is_replayable_topic("", "payments.v1"));
        assert!(!is_replayable_topic("", "omninode.logging.audit.v2"));
        assert!(!is_replayable_topic("", &format!("{audit}.dlq.dlq")));
    }
}
