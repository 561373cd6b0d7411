//! Replaying the spool (SPEC §4): when the broker is reachable (a delivery went through, or
//! a metadata probe answered), the oldest sealed segment is read and its records are sent
//! again; the segment is removed once every one of them reached a final state.

use std::time::{Duration, Instant};

use crate::contract::catalog;
use crate::contract::dlq::DLQ_SUFFIX;
use crate::contract::wire::WireRecord;
use crate::metrics::Counters;
use crate::pipeline::worker::{InFlight, Origin, Worker};

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

const PROBE_EVERY: Duration = Duration::from_secs(2);
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
        self.healthy = Some(true);
        true
    }

    /// Replays the oldest spool segment when nothing is being replayed and the broker is
    /// reachable.
    pub(super) fn maybe_replay(&mut self) {
        if !self.replay.is_empty() || self.shutting_down {
            return;
        }
        if self.replay_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        if self.spooler.lock().is_empty() {
            return;
        }
        if !self.reachable() {
            return;
        }
        let (seg, read) = {
            let mut spool = self.spooler.lock();
            let Some(seg) = spool.oldest_sealed() else {
                return;
            };
            match spool.read_segment(seg) {
                Ok(read) => (seg, read),
                Err(_) => {
                    // The file could not be read now (too many open files, EIO): keep it
                    // and try again after a probe interval, never delete it for that.
                    self.replay_after = Some(Instant::now() + PROBE_EVERY);
                    return;
                }
            }
        };
        Counters::add(&self.counters.spool_corrupt, read.corrupt);
        let prefix = &self.config.topic_prefix;
        let records: Vec<WireRecord> = read
            .records
            .iter()
            .filter_map(|bytes| {
                let Some(r) = WireRecord::from_bytes(bytes) else {
                    Counters::add(&self.counters.spool_corrupt, 1);
                    return None;
                };
                if !is_replayable_topic(prefix, &r.topic) {
                    Counters::add(&self.counters.spool_rejected, 1);
                    return None;
                }
                Some(r)
            })
            .collect();
        if records.is_empty() {
            let _ = self.spooler.lock().remove_segment(seg);
            return;
        }
        self.replay.insert(seg, records.len());
        for record in records {
            let is_dlq = record.topic.ends_with(DLQ_SUFFIX);
            self.send(InFlight::new(record, Origin::Replay(seg), is_dlq));
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
            self.replay.remove(&seg);
            if !self.keep.remove(&seg) {
                let _ = self.spooler.lock().remove_segment(seg);
            }
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
