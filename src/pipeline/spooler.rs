//! The one way into the spool: every record that is kept on disk (a delivery that cannot
//! succeed now, a dead-letter record the DLQ topic cannot take now, a replayed record that
//! failed again, an event emitted after shutdown) goes through [`Spooler::put`], which
//! counts it. Also the queue's overflow ([`OverflowSink`]), which the worker drains.

use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender};

use crate::capture::queue::Overflow;
use crate::capture::record::Captured;
use crate::config::Config;
use crate::contract::wire::WireRecord;
use crate::diagnostics::{Condition, Diagnostics};
use crate::metrics::Counters;
use crate::pipeline::assemble::assemble;
use crate::spool::{RecordId, Store};

/// The spool, shared by the worker and (through [`Overflow`]) the queue.
#[derive(Debug)]
pub(crate) struct Spooler {
    pub config: Arc<Config>,
    counters: Arc<Counters>,
    diag: Arc<Diagnostics>,
    spool: Mutex<Store>,
}

impl Spooler {
    pub fn new(
        config: Arc<Config>,
        counters: Arc<Counters>,
        diag: Arc<Diagnostics>,
        spool: Store,
    ) -> Self {
        Spooler {
            config,
            counters,
            diag,
            spool: Mutex::new(spool),
        }
    }

    /// The spool, also after a thread panicked while holding it (the spool's own state is
    /// consistent after every call, so a poisoned lock is safe to take over).
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `record` (a record that failed, kept for a later replay); `None` when the
    /// spool refused it (full, or the disk failed), which the caller must account for.
    pub fn put(&self, record: &WireRecord) -> Option<RecordId> {
        let written = self.write_ahead(&[record]).pop();
        let counter = match written {
            Some(_) => &self.counters.spooled,
            None => &self.counters.spool_full,
        };
        Counters::add(counter, 1);
        match written {
            Some(_) => self.diag.clear(Condition::SpoolFull, None),
            None => self.diag.raise(
                Condition::SpoolFull,
                "",
                &format!(
                    "the spool ({}) is full at {} bytes: events that cannot be delivered \
                     now are dropped; restore the broker or raise OMNINODE_SPOOL_MAX_BYTES",
                    self.config.spool_dir.display(),
                    self.config.spool_max_bytes
                ),
            ),
        }
        written
    }

    /// Writes records ahead of producing them (the write-ahead log of guaranteed events),
    /// in one write; returns the ids of those written, the first ones of `records` (the
    /// rest, refused by a full spool, travel in memory only). Not counted as spooled.
    pub fn write_ahead(&self, records: &[&WireRecord]) -> Vec<RecordId> {
        let payloads: Vec<Vec<u8>> = records.iter().map(|r| r.to_bytes()).collect();
        let mut spool = self.lock();
        fault!("omninode::spool_write");
        match spool.append_all(payloads.iter().map(Vec::as_slice)) {
            Ok(ids) | Err((ids, _)) => ids,
        }
    }

    /// Marks a spooled record done (delivered, dead-lettered or skipped): it is never
    /// replayed. A lost ack (a crash, a failed write) only means a duplicate at replay.
    pub fn ack(&self, id: RecordId) {
        self.ack_all(&[id]);
    }

    /// [`Spooler::ack`]s many records in one write per segment.
    pub fn ack_all(&self, ids: &[RecordId]) {
        if !ids.is_empty() {
            let _ = self.lock().ack_all(ids);
        }
    }

    /// Makes what was written and acked durable against a machine crash.
    pub fn sync(&self) {
        let _ = self.lock().sync();
    }
}

/// The queue's overflow: guaranteed events that found no room wait here, in memory, for
/// the worker, which takes them before the queue; nothing is assembled or written on the
/// caller's thread while the worker runs.
#[derive(Debug)]
pub(crate) struct OverflowSink {
    tx: Sender<Captured>,
    spooler: Arc<Spooler>,
}

impl OverflowSink {
    /// The sink, and the receiving end the worker drains.
    pub fn new(spooler: Arc<Spooler>, capacity: usize) -> (OverflowSink, Receiver<Captured>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        (OverflowSink { tx, spooler }, rx)
    }
}

impl Overflow for OverflowSink {
    fn hand_over(&self, ev: Captured) -> bool {
        self.tx.try_send(ev).is_ok()
    }

    /// Assembles the event here and now and spools it (no worker is left to do it).
    fn write_now(&self, ev: Captured) -> bool {
        self.spooler
            .put(&assemble(&self.spooler.config, ev).record)
            .is_some()
    }
}
