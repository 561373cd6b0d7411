//! The bounded queue between callers and the worker, with the per-class overflow policy of
//! SPEC §4, and the state the layer, worker and guard share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};
use uuid::Uuid;

use crate::capture::record::{Captured, SpanCtx};
use crate::config::Config;
use crate::metrics::Counters;
use crate::pipeline::assemble::assemble;
use crate::spool::Spool;

/// Application logs dropped since the last in-stream report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DropRange {
    pub count: u64,
    pub first_sequence: u64,
    pub last_sequence: u64,
}

/// An agent span that emitted `started` and has not ended yet.
#[derive(Debug, Clone)]
pub(crate) struct OpenAgent {
    pub agent_name: String,
    pub started_event_id: Uuid,
    pub span: Arc<SpanCtx>,
}

/// State shared by the layer, the worker and the guard.
pub(crate) struct Shared {
    pub config: Config,
    pub counters: Counters,
    sequence: AtomicU64,
    pub drops: Mutex<Option<DropRange>>,
    pub spool: Mutex<Spool>,
    pub open_agents: Mutex<HashMap<Uuid, OpenAgent>>,
    /// Set once shutdown began: new events skip the queue and go to the spool.
    pub closed: AtomicBool,
}

// Hand-written: open agent spans hold raw (unsanitized) span fields, which must not reach
// a `Debug` print of the guard.
impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(config: Config, spool: Spool) -> Self {
        Shared {
            config,
            counters: Counters::default(),
            sequence: AtomicU64::new(0),
            drops: Mutex::new(None),
            spool: Mutex::new(spool),
            open_agents: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// The spool, also after a thread panicked while holding it (the spool's own state is
    /// consistent after every call, so a poisoned lock is safe to take over).
    pub fn lock_spool(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next per-instance sequence number (from 1).
    pub fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn record_drop(&self, sequence: u64) {
        Counters::add(&self.counters.dropped, 1);
        let mut drops = self.drops.lock().unwrap_or_else(|p| p.into_inner());
        match drops.as_mut() {
            Some(r) => {
                r.count += 1;
                r.first_sequence = r.first_sequence.min(sequence);
                r.last_sequence = r.last_sequence.max(sequence);
            }
            None => {
                *drops = Some(DropRange {
                    count: 1,
                    first_sequence: sequence,
                    last_sequence: sequence,
                })
            }
        }
    }

    /// Takes the drops recorded since the last call.
    pub fn take_drops(&self) -> Option<DropRange> {
        self.drops.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Writes one encoded record to the spool. A refusal (spool full) is counted as a drop
    /// and, when the record's sequence number is known, reported in-stream like the other
    /// drops so the gap it leaves is explained.
    pub fn spool_record(&self, bytes: &[u8], sequence: Option<u64>) -> bool {
        let written = self.lock_spool().append(bytes).is_ok();
        if written {
            Counters::add(&self.counters.spooled, 1);
        } else {
            Counters::add(&self.counters.spool_full, 1);
            match sequence {
                Some(seq) => self.record_drop(seq),
                None => Counters::add(&self.counters.dropped, 1),
            }
        }
        written
    }

    /// Assembles a captured event here and now and spools it (a guaranteed event that found
    /// no room in the queue, or arrived after shutdown).
    pub fn spool_captured(&self, ev: Captured) {
        let sequence = ev.sequence;
        let assembled = assemble(&self.config, ev);
        self.spool_record(&assembled.record.to_bytes(), Some(sequence));
    }

    /// Hands a guaranteed event over without waiting: into the queue if there is room,
    /// else straight to the spool (used at shutdown, which must keep its deadline).
    pub fn push_or_spool(&self, tx: &Sender<Captured>, ev: Captured) {
        match tx.try_send(ev) {
            Ok(()) => Counters::add(&self.counters.enqueued, 1),
            Err(TrySendError::Full(ev) | TrySendError::Disconnected(ev)) => self.spool_captured(ev),
        }
    }

    /// Hands a captured event to the worker under the overflow policy of its class.
    /// Never blocks longer than the configured wait, never panics.
    pub fn push(&self, tx: &Sender<Captured>, ev: Captured) {
        if self.closed.load(Ordering::Acquire) {
            if ev.is_guaranteed() {
                self.spool_captured(ev);
            } else {
                self.record_drop(ev.sequence);
            }
            return;
        }
        if ev.is_guaranteed() {
            match tx.send_timeout(ev, self.config.guaranteed_wait) {
                Ok(()) => Counters::add(&self.counters.enqueued, 1),
                Err(SendTimeoutError::Timeout(ev) | SendTimeoutError::Disconnected(ev)) => {
                    self.spool_captured(ev)
                }
            }
        } else {
            match tx.try_send(ev) {
                Ok(()) => Counters::add(&self.counters.enqueued, 1),
                Err(TrySendError::Full(ev) | TrySendError::Disconnected(ev)) => {
                    self.record_drop(ev.sequence)
                }
            }
        }
    }
}
