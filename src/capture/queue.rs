//! The caller's end of the bounded queue to the worker, with the per-class overflow policy
//! of SPEC §4: an application log that finds no room is dropped (and the drop is recorded
//! for an in-stream report); a guaranteed event waits a bounded time, then goes to the
//! [`Overflow`] (the spool, wired in by the builder).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};
use crossbeam_utils::CachePadded;

use crate::capture::record::Captured;
use crate::metrics::{Counters, Striped};

/// Where a guaranteed event goes when the queue has no room for it, or is closed.
pub(crate) trait Overflow: Send + Sync {
    /// Hands `ev` over without waiting, to be kept by the worker (which takes these first
    /// and spools what it cannot deliver). False when there is no room: a drop.
    fn hand_over(&self, ev: Captured) -> bool;
    /// Keeps `ev` on disk now, on this thread: only once the queue is closed, when there is
    /// no worker left to hand it to. False when the spool refused it: a drop.
    fn write_now(&self, ev: Captured) -> bool;
}

/// An overflow that keeps nothing: for a queue nothing is pushed to (a disabled pipeline)
/// and for tests that read the queue alone.
#[derive(Debug)]
pub(crate) struct NoOverflow;

impl Overflow for NoOverflow {
    fn hand_over(&self, _: Captured) -> bool {
        false
    }
    fn write_now(&self, _: Captured) -> bool {
        false
    }
}

/// A run of lost events, reported in-stream by the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DropRange {
    pub count: u64,
    pub first_sequence: u64,
    pub last_sequence: u64,
}

/// The events lost since the last in-stream report: application logs dropped on a full
/// queue, and events a full spool refused. Written by both threads, taken by the worker.
#[derive(Debug)]
pub(crate) struct DropLog {
    counters: Arc<Counters>,
    range: Mutex<Option<DropRange>>,
}

impl DropLog {
    pub fn new(counters: Arc<Counters>) -> Self {
        DropLog {
            counters,
            range: Mutex::new(None),
        }
    }

    /// Records the loss of event `sequence`.
    pub fn record(&self, sequence: u64) {
        Counters::add(&self.counters.dropped, 1);
        let mut range = self.range.lock().unwrap_or_else(|p| p.into_inner());
        match range.as_mut() {
            Some(r) => {
                r.count += 1;
                r.first_sequence = r.first_sequence.min(sequence);
                r.last_sequence = r.last_sequence.max(sequence);
            }
            None => {
                *range = Some(DropRange {
                    count: 1,
                    first_sequence: sequence,
                    last_sequence: sequence,
                })
            }
        }
    }

    /// Takes the drops recorded since the last call.
    pub fn take(&self) -> Option<DropRange> {
        self.range.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The bounded queue's sending side, shared by the layer, the guard and the worker.
///
/// Every caller writes `sequence` (one shared counter: the sequence has no gaps) and its
/// own cells of `pushing` and the `enqueued` counter; what callers only read (`closed`,
/// the sender) sits on other cache lines, so it stays cached on every core.
pub(crate) struct Queue {
    tx: Sender<Captured>,
    sequence: CachePadded<AtomicU64>,
    /// Set once shutdown began: new events skip the queue (guaranteed ones are kept by
    /// the overflow, the others dropped).
    closed: CachePadded<AtomicBool>,
    /// Pushes under way: once the queue is closed and this is 0, nothing more can reach
    /// the channel, so the worker's last drain is really the last. Striped per thread.
    pushing: Striped,
    /// The worker gave up (repeated panics): the queue is closed for good.
    worker_stopped: AtomicBool,
    guaranteed_wait: Duration,
    counters: Arc<Counters>,
    drops: DropLog,
    overflow: Arc<dyn Overflow>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.tx.capacity())
            .field("len", &self.tx.len())
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Queue {
    pub fn new(
        tx: Sender<Captured>,
        guaranteed_wait: Duration,
        counters: Arc<Counters>,
        overflow: Arc<dyn Overflow>,
    ) -> Self {
        Queue {
            drops: DropLog::new(counters.clone()),
            tx,
            sequence: CachePadded::new(AtomicU64::new(0)),
            closed: CachePadded::new(AtomicBool::new(false)),
            pushing: Striped::default(),
            worker_stopped: AtomicBool::new(false),
            guaranteed_wait,
            counters,
            overflow,
        }
    }

    /// Events waiting in the queue for the worker.
    pub fn depth(&self) -> usize {
        self.tx.len()
    }

    /// The next per-instance sequence number (from 1).
    pub fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The drop log the worker reports from.
    pub fn drops(&self) -> &DropLog {
        &self.drops
    }

    /// Closes the queue: what arrives from now on does not wait for the worker.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// The worker stopped for good: the queue closes, so callers no longer hand events to
    /// a thread that will never take them.
    pub fn worker_stopped(&self) {
        self.worker_stopped.store(true, Ordering::SeqCst);
        self.close();
    }

    /// Whether [`Queue::worker_stopped`] was called.
    pub fn is_worker_stopped(&self) -> bool {
        self.worker_stopped.load(Ordering::SeqCst)
    }

    /// After [`Queue::close`]: waits until no push is under way (each is bounded by the
    /// guaranteed wait), so that a drain after this returns sees every event that made it
    /// into the channel. Gives up after `max`.
    pub fn settle(&self, max: Duration) {
        let until = Instant::now() + max;
        while self.pushing.sum(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// The wait a guaranteed event may spend on a full queue.
    pub fn guaranteed_wait(&self) -> Duration {
        self.guaranteed_wait
    }

    /// Hands `ev` to the overflow (written now once the queue is closed), recording a drop
    /// when it refuses.
    pub fn overflow(&self, ev: Captured) {
        let sequence = ev.sequence;
        let kept = if self.closed.load(Ordering::SeqCst) {
            self.overflow.write_now(ev)
        } else {
            self.overflow.hand_over(ev)
        };
        if !kept {
            self.drops.record(sequence);
        }
    }

    fn accepted(&self) {
        self.counters.enqueued.add(1, Ordering::Relaxed);
    }

    /// Hands a guaranteed event over without waiting: into the queue if there is room,
    /// else to the overflow (used at shutdown, which must keep its deadline).
    pub fn push_or_overflow(&self, ev: Captured) {
        if self.closed.load(Ordering::SeqCst) {
            return self.overflow(ev);
        }
        match self.tx.try_send(ev) {
            Ok(()) => self.accepted(),
            Err(TrySendError::Full(ev) | TrySendError::Disconnected(ev)) => self.overflow(ev),
        }
    }

    /// Hands a captured event to the worker under the overflow policy of its class.
    /// Never blocks longer than the configured wait, never panics.
    #[inline(always)]
    pub fn push(&self, ev: Captured) {
        // Counted before `closed` is read (both SeqCst): a push that saw the queue open is
        // seen by `settle` until its send is over; one that starts later sees it closed.
        self.pushing.add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.pushing.sub(1, Ordering::SeqCst);
            if ev.is_guaranteed() {
                self.overflow(ev);
            } else {
                self.drops.record(ev.sequence);
            }
            return;
        }
        self.send(ev);
        self.pushing.sub(1, Ordering::SeqCst);
    }

    #[inline(always)]
    fn send(&self, ev: Captured) {
        if ev.is_guaranteed() {
            match self.tx.send_timeout(ev, self.guaranteed_wait) {
                Ok(()) => self.accepted(),
                Err(SendTimeoutError::Timeout(ev) | SendTimeoutError::Disconnected(ev)) => {
                    self.overflow(ev)
                }
            }
        } else {
            match self.tx.try_send(ev) {
                Ok(()) => self.accepted(),
                Err(TrySendError::Full(ev) | TrySendError::Disconnected(ev)) => {
                    self.drops.record(ev.sequence)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::record::Body;
    use crate::contract::timestamp::Timestamp;

    type Receiver = crossbeam_channel::Receiver<Captured>;

    /// Keeps what it is given, up to a limit.
    struct Keeper {
        limit: usize,
        kept: Mutex<Vec<u64>>,
    }

    impl Overflow for Keeper {
        fn hand_over(&self, ev: Captured) -> bool {
            self.write_now(ev)
        }
        fn write_now(&self, ev: Captured) -> bool {
            let mut kept = self.kept.lock().unwrap();
            if kept.len() < self.limit {
                kept.push(ev.sequence);
                true
            } else {
                false
            }
        }
    }

    fn event(queue: &Queue, guaranteed: bool) -> Captured {
        Captured {
            sequence: queue.next_sequence(),
            timestamp: Timestamp::now(),
            span: None,
            body: if guaranteed {
                Body::Audit(Default::default())
            } else {
                Body::Log {
                    level: tracing::Level::INFO,
                    target: "app",
                    message: Default::default(),
                    fields: Default::default(),
                }
            },
        }
    }

    /// A queue nobody drains (it stays full once filled); the receiver keeps it open.
    fn queue(capacity: usize, keep: usize) -> (Queue, Arc<Keeper>, Arc<Counters>, Receiver) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let counters = Arc::new(Counters::default());
        let keeper = Arc::new(Keeper {
            limit: keep,
            kept: Mutex::new(Vec::new()),
        });
        let q = Queue::new(
            tx,
            Duration::from_millis(1),
            counters.clone(),
            keeper.clone(),
        );
        (q, keeper, counters, rx)
    }

    #[test]
    fn overflow_policy_per_class() {
        let (q, keeper, counters, _rx) = queue(2, 1);
        for guaranteed in [false, true, false, true, true] {
            q.push(event(&q, guaranteed));
        }
        // 1 and 2 fill the queue; 3 (a log) is dropped; 4 (audit) overflows and is kept;
        // 5 (audit) overflows, the overflow refuses it: a drop.
        assert_eq!(*keeper.kept.lock().unwrap(), vec![4]);
        assert_eq!(counters.enqueued.sum(Ordering::Relaxed), 2);
        assert_eq!(
            q.drops().take(),
            Some(DropRange {
                count: 2,
                first_sequence: 3,
                last_sequence: 5
            })
        );
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(q.drops().take(), None);
    }

    #[test]
    fn a_closed_queue_keeps_guaranteed_events_and_drops_logs() {
        let (q, keeper, counters, _rx) = queue(8, 8);
        q.close();
        q.push(event(&q, true));
        q.push(event(&q, false));
        assert_eq!(*keeper.kept.lock().unwrap(), vec![1]);
        assert_eq!(counters.enqueued.sum(Ordering::Relaxed), 0);
        assert_eq!(q.drops().take().map(|r| r.count), Some(1));
    }
}
