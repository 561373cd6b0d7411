//! The write-ahead spool of guaranteed events: the worker writes each batch's guaranteed
//! records to the spool before producing them (one write, synced per the configured
//! [`FsyncPolicy`]), acknowledges each in the spool once it reached a final state
//! (delivered, dead-lettered, skipped), and leaves it unacknowledged when it is kept for a
//! replay. After a crash the next start replays exactly the unacknowledged ones.

use std::time::Instant;

use crate::config::{FsyncPolicy, SpoolMode};
use crate::diagnostics::Condition;
use crate::metrics::Counters;
use crate::pipeline::worker::{InFlight, Origin, Worker};
use crate::spool::RecordId;

impl Worker {
    /// Writes the guaranteed live records of a batch ahead to the spool. Those the spool
    /// refuses (full) travel in memory only, as application logs always do.
    pub(super) fn write_ahead(&mut self, flights: &mut [Box<InFlight>]) {
        let ahead: Vec<usize> = (0..flights.len())
            .filter(|&i| {
                let f = &flights[i];
                f.guaranteed && f.wal.is_none() && f.origin == Origin::Live
            })
            .collect();
        if ahead.is_empty() {
            return;
        }
        let records: Vec<_> = ahead.iter().map(|&i| &*flights[i].record).collect();
        let ids = self.spooler.write_ahead(&records);
        for (&i, id) in ahead.iter().zip(ids) {
            flights[i].wal = Some(id);
            *self.live.entry(id.segment).or_default() += 1;
        }
        if self.config.spool_fsync == FsyncPolicy::Always {
            self.sync_now();
        }
    }

    /// Syncs the spool when the interval of the policy has passed.
    pub(super) fn sync_due(&mut self) {
        if let FsyncPolicy::Interval(every) = self.config.spool_fsync {
            if self.last_sync.elapsed() >= every {
                self.sync_now();
            }
        }
    }

    fn sync_now(&mut self) {
        self.last_sync = Instant::now();
        self.spooler.sync();
    }

    /// `flight` reached a final state: its spool record, if any, is done (acknowledged in
    /// the spool by the next [`Worker::flush_acks`]).
    pub(super) fn done(&mut self, flight: &InFlight) {
        if let Some(id) = flight.wal {
            self.acks.push(id);
            self.settled(flight, id);
        }
    }

    /// Writes the acknowledgements gathered since the last call (one write per segment).
    /// Called after each round of delivery reports, and before anything reads the spool.
    pub(super) fn flush_acks(&mut self) {
        if !self.acks.is_empty() {
            self.spooler.ack_all(&self.acks);
            self.acks.clear();
        }
    }

    /// Keeps `flight` for a later replay; false when the spool refused it (only a record
    /// with no spool copy can be refused).
    pub(super) fn park(&mut self, flight: &InFlight) -> bool {
        match flight.wal {
            // Its spool copy is this very record: leave it unacknowledged.
            Some(id) if !flight.wal_holds_original => {
                Counters::add(&self.counters.spooled, 1);
                self.settled(flight, id);
                self.parked_in(id);
                true
            }
            // A dead-letter record whose original has the spool copy: keep the dead-letter
            // record itself (a replay must not re-send an invalid original to its topic),
            // then let the original go. If the spool is full, the original stays instead.
            Some(original) => {
                match self.spooler.put(&flight.record) {
                    Some(id) => {
                        self.spooler.ack(original);
                        self.parked_in(id);
                    }
                    None => self.parked_in(original),
                }
                self.settled(flight, original);
                true
            }
            None => match self.spooler.put(&flight.record) {
                Some(id) => {
                    self.parked_in(id);
                    true
                }
                None => false,
            },
        }
    }

    /// A record was left for replay in `id`'s segment: if that is the active segment, it
    /// is sealed for replay once none of its records is in flight.
    fn parked_in(&mut self, id: RecordId) {
        if self.spooler.lock().active_segment() == Some(id.segment) {
            self.parked_active = true;
        }
        let where_ = match self.config.spool_mode {
            SpoolMode::Disk => format!("the spool ({})", self.config.spool_dir.display()),
            SpoolMode::Memory => "the memory spool (lost if the process dies)".to_owned(),
        };
        self.diag.raise(
            Condition::Spooling,
            "",
            &format!(
                "events wait in {where_} until the broker takes them; they are replayed \
                 oldest first"
            ),
        );
    }

    /// A live write-ahead record is no longer in flight.
    fn settled(&mut self, flight: &InFlight, id: RecordId) {
        if flight.origin != Origin::Live {
            return;
        }
        if let Some(n) = self.live.get_mut(&id.segment) {
            *n -= 1;
            if *n == 0 {
                self.live.remove(&id.segment);
            }
        }
    }
}
