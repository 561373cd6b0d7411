//! The one way into the spool: every record that is kept on disk (a guaranteed event the
//! queue had no room for, a delivery that cannot succeed now, a dead-letter record the DLQ
//! topic cannot take now, a replayed record that failed again) goes through
//! [`Spooler::put`], which counts it.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::capture::queue::Overflow;
use crate::capture::record::Captured;
use crate::config::Config;
use crate::contract::wire::WireRecord;
use crate::metrics::Counters;
use crate::pipeline::assemble::assemble;
use crate::spool::Spool;

/// The spool, shared by the worker and (through [`Overflow`]) the queue.
#[derive(Debug)]
pub(crate) struct Spooler {
    config: Arc<Config>,
    counters: Arc<Counters>,
    spool: Mutex<Spool>,
}

impl Spooler {
    pub fn new(config: Arc<Config>, counters: Arc<Counters>, spool: Spool) -> Self {
        Spooler {
            config,
            counters,
            spool: Mutex::new(spool),
        }
    }

    /// The spool, also after a thread panicked while holding it (the spool's own state is
    /// consistent after every call, so a poisoned lock is safe to take over).
    pub fn lock(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `record`; false when the spool refused it (full, or the disk failed), which
    /// the caller must account for.
    pub fn put(&self, record: &WireRecord) -> bool {
        let written = self.lock().append(&record.to_bytes()).is_ok();
        let counter = if written {
            &self.counters.spooled
        } else {
            &self.counters.spool_full
        };
        Counters::add(counter, 1);
        written
    }
}

impl Overflow for Spooler {
    /// Assembles the event here and now and spools it.
    fn keep(&self, ev: Captured) -> bool {
        self.put(&assemble(&self.config, ev).record)
    }
}
