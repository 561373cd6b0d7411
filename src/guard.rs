//! The guard returned with the layer: flush, bounded shutdown and counters; and the
//! cloneable [`MetricsHandle`] that reads the counters for a health or metrics endpoint.
//!
//! # In an async runtime
//!
//! [`Guard::flush`], [`Guard::shutdown`] and dropping the guard block the calling thread
//! until the worker answers, at most their deadline. The worker is an ordinary thread that
//! never needs the runtime, so none of them can deadlock, also in tokio's current-thread
//! runtime; but a blocked runtime thread runs no other task meanwhile. With the `tokio`
//! feature:
//!
//! - `Guard::flush_async` and `Guard::shutdown_async` wait on tokio's blocking pool
//!   (`spawn_blocking`), so every other task keeps running, in either flavour of runtime;
//! - the blocking forms and `Drop`, called on a worker thread of a multi-thread runtime,
//!   wait inside `block_in_place`, so that thread's other tasks move to another worker.
//!
//! On a current-thread runtime the blocking forms and `Drop` still hold the runtime's one
//! thread until the deadline: call `Guard::shutdown_async` before the guard goes out of
//! scope.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::capture::agent::OpenAgents;
use crate::capture::queue::Queue;
use crate::config::Config;
use crate::contract::limits::deadline_in;
use crate::diagnostics::Diagnostics;
use crate::metrics::{Counters, Health, HealthStatus, Metrics, Report};
use crate::pipeline::worker::Control;

/// Time allowed past a deadline for the worker's reply to travel back.
const REPLY_MARGIN: Duration = Duration::from_millis(250);

/// How often a shutdown looks whether the worker thread has ended.
const THREAD_POLL: Duration = Duration::from_millis(2);

/// Why a flush or shutdown did not complete.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipelineError {
    /// The deadline passed first. The report holds the totals so far. The worker goes on
    /// spooling what was not delivered, but only while the process lives: a program that
    /// exits right away may lose those events.
    #[error("the deadline passed before the pipeline finished ({0})")]
    Timeout(Report),
    /// The pipeline was already shut down.
    #[error("the pipeline is already shut down")]
    AlreadyShutdown,
    /// The worker stopped after repeated panics: nothing more is delivered. The report holds
    /// the totals; guaranteed events since then are in the spool, replayed by the next start.
    #[error("the delivery worker stopped after repeated panics ({0}); events since are spooled or dropped, see Metrics::worker_stopped")]
    WorkerStopped(Report),
}

/// Keeps the delivery worker alive. Dropping it flushes and shuts the pipeline down with
/// the configured default deadline; call [`Guard::shutdown`] (or, with the `tokio`
/// feature, `Guard::shutdown_async`) to choose the deadline and see the report.
///
/// The guard is unique: one owner shuts the pipeline down, once. To read the counters from
/// elsewhere (a health endpoint, a metrics exporter), take a [`Guard::handle`].
#[must_use = "dropping the guard shuts the pipeline down at once; keep it for the life of the program"]
#[derive(Debug)]
pub struct Guard {
    link: Link,
    agents: Arc<OpenAgents>,
    handle: Option<JoinHandle<()>>,
    #[cfg(feature = "metrics")]
    publisher: Option<crate::metrics::export::Publisher>,
}

/// What the guard is made of.
pub(crate) struct GuardParts {
    pub config: Arc<Config>,
    pub counters: Arc<Counters>,
    pub queue: Arc<Queue>,
    pub agents: Arc<OpenAgents>,
    pub diag: Arc<Diagnostics>,
    pub ctrl: Sender<Control>,
    /// The worker; `None` for a disabled pipeline.
    pub handle: Option<JoinHandle<()>>,
}

/// What a flush needs, cloneable so that a flush can wait on another thread.
#[derive(Debug, Clone)]
struct Link {
    view: MetricsHandle,
    queue: Arc<Queue>,
    ctrl: Sender<Control>,
}

impl Link {
    fn report(&self) -> Report {
        Report::from(&self.view.metrics())
    }

    /// [`PipelineError::WorkerStopped`] when the worker gave up, else `other`.
    fn stopped_or(&self, other: PipelineError) -> PipelineError {
        if self.queue.is_worker_stopped() {
            PipelineError::WorkerStopped(self.report())
        } else {
            other
        }
    }

    fn check_worker(&self) -> Result<(), PipelineError> {
        match self.queue.is_worker_stopped() {
            true => Err(PipelineError::WorkerStopped(self.report())),
            false => Ok(()),
        }
    }

    fn flush(&self, timeout: Duration) -> Result<Report, PipelineError> {
        self.check_worker()?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        let deadline = deadline_in(timeout);
        self.ctrl
            .send(Control::Flush { deadline, reply })
            .map_err(|_| self.stopped_or(PipelineError::AlreadyShutdown))?;
        answer
            .recv_deadline(deadline_in(timeout.saturating_add(REPLY_MARGIN)))
            .map_err(|_| self.stopped_or(PipelineError::Timeout(self.report())))
    }
}

impl Guard {
    pub(crate) fn new(parts: GuardParts) -> Self {
        let view = MetricsHandle {
            config: parts.config,
            counters: parts.counters,
            queue: Arc::downgrade(&parts.queue),
            diag: parts.diag,
            shut_down: Arc::new(AtomicBool::new(false)),
        };
        Guard {
            #[cfg(feature = "metrics")]
            publisher: crate::metrics::export::Publisher::spawn(
                view.config.service_name.clone(),
                {
                    let view = view.clone();
                    move || view.metrics()
                },
            ),
            link: Link {
                view,
                queue: parts.queue,
                ctrl: parts.ctrl,
            },
            agents: parts.agents,
            handle: parts.handle,
        }
    }

    /// The counters, at any time.
    pub fn metrics(&self) -> Metrics {
        self.link.view.metrics()
    }

    /// A cloneable, read-only view of this pipeline's counters and health, for a health
    /// or metrics endpoint. It does not keep the pipeline alive: after the shutdown it
    /// reports [`HealthStatus::ShutDown`] and the final totals.
    pub fn handle(&self) -> MetricsHandle {
        self.link.view.clone()
    }

    /// The spool directory this pipeline holds: the configured one, or `<dir>.<n>` when
    /// another live pipeline held it at build time.
    pub fn spool_dir(&self) -> &std::path::Path {
        &self.link.view.config.spool_dir
    }

    /// Sends everything captured so far and waits for the broker's answers, at most
    /// `timeout`. Never waits on the network itself: it waits for the worker's reply.
    ///
    /// This blocks the calling thread; in async code see `Guard::flush_async` and the
    /// [module docs](self#in-an-async-runtime).
    pub fn flush(&self, timeout: Duration) -> Result<Report, PipelineError> {
        if self.handle.is_none() {
            return self.without_worker();
        }
        blocking(|| self.link.flush(timeout))
    }

    /// What a flush or shutdown answers when there is no worker: a disabled pipeline has
    /// nothing to do (until it is shut down), any other was shut down already.
    fn without_worker(&self) -> Result<Report, PipelineError> {
        let view = &self.link.view;
        if view.config.disabled && !view.shut_down.load(Ordering::SeqCst) {
            Ok(self.link.report())
        } else {
            Err(PipelineError::AlreadyShutdown)
        }
    }

    /// [`Guard::flush`] for async code: the wait for the worker's reply runs on tokio's
    /// blocking pool (`spawn_blocking`), so no runtime thread is blocked, in either flavour
    /// of runtime. Dropping the future abandons the wait, not the flush.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    #[cfg(feature = "tokio")]
    pub async fn flush_async(&self, timeout: Duration) -> Result<Report, PipelineError> {
        if self.handle.is_none() {
            return self.without_worker();
        }
        let link = self.link.clone();
        match tokio::task::spawn_blocking(move || link.flush(timeout)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down: the wait was never run.
            Err(_) => Err(PipelineError::Timeout(self.link.report())),
        }
    }

    /// Ends open agent executions, flushes, spools what could not be delivered by
    /// `timeout`, and stops the worker. Returns within `timeout` plus a small margin.
    ///
    /// When it returns `Ok`, the worker thread has ended (or the deadline passed while it
    /// was tearing its Kafka client down), so the spool directory is free for a new
    /// pipeline once the layer is gone too.
    ///
    /// This blocks the calling thread; in async code see `Guard::shutdown_async` and the
    /// [module docs](self#in-an-async-runtime).
    pub fn shutdown(mut self, timeout: Duration) -> Result<Report, PipelineError> {
        blocking(|| self.shutdown_inner(timeout))
    }

    /// [`Guard::shutdown`] for async code: the shutdown runs on tokio's blocking pool
    /// (`spawn_blocking`), so no runtime thread is blocked, in either flavour of runtime.
    /// Dropping the future does not cancel the shutdown: it goes on, bounded by `timeout`.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    #[cfg(feature = "tokio")]
    pub async fn shutdown_async(self, timeout: Duration) -> Result<Report, PipelineError> {
        let view = self.handle();
        match tokio::task::spawn_blocking(move || self.shutdown(timeout)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down and dropped the task (and with it the guard,
            // whose drop shut the pipeline down with the default deadline).
            Err(_) => Err(PipelineError::Timeout(Report::from(&view.metrics()))),
        }
    }

    fn shutdown_inner(&mut self, timeout: Duration) -> Result<Report, PipelineError> {
        let Some(handle) = self.handle.take() else {
            let result = self.without_worker();
            self.link.view.shut_down.store(true, Ordering::SeqCst);
            return result;
        };
        let result = self.stop_worker(handle, timeout);
        self.link.view.shut_down.store(true, Ordering::SeqCst);
        // Last: its final publication sees the final totals.
        #[cfg(feature = "metrics")]
        drop(self.publisher.take());
        result
    }

    fn stop_worker(
        &mut self,
        handle: JoinHandle<()>,
        timeout: Duration,
    ) -> Result<Report, PipelineError> {
        let link = &self.link;
        self.agents.fail_all(&link.queue);
        link.check_worker()?;
        let deadline = deadline_in(timeout);
        let (reply, answer) = crossbeam_channel::bounded(1);
        if link
            .ctrl
            .send(Control::Shutdown { deadline, reply })
            .is_err()
        {
            return Err(link.stopped_or(PipelineError::AlreadyShutdown));
        }
        let until = deadline_in(timeout.saturating_add(REPLY_MARGIN));
        match answer.recv_deadline(until) {
            Ok(report) => {
                // The worker still drops its producer (librdkafka's own teardown) and with
                // it its hold on the spool directory: wait for that, never past the
                // deadline, so that a pipeline built next finds the directory free.
                while !handle.is_finished() && Instant::now() < until {
                    std::thread::sleep(THREAD_POLL);
                }
                if handle.is_finished() {
                    let _ = handle.join();
                }
                Ok(report)
            }
            // The worker finishes on its own; we do not wait for it past the deadline.
            Err(_) => Err(link.stopped_or(PipelineError::Timeout(link.report()))),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.handle.is_some() {
            // The guard and the worker hold the queue; a third holder is the layer. A guard
            // dropped before its layer is almost always `let (layer, _) = ..build()?`.
            if Arc::strong_count(&self.link.queue) > 2 && !std::thread::panicking() {
                self.link.view.diag.notice(
                    tracing::Level::WARN,
                    "guard",
                    "the tracing-omninode Guard was dropped while its layer is still \
                     installed: the pipeline shuts down now and every later event is dropped. \
                     Keep the guard for the life of the program: `let (layer, _guard) = \
                     builder().build()?`, not `let (layer, _) = ..`",
                );
            }
            let timeout = self.link.view.config.shutdown_timeout;
            let _ = blocking(|| self.shutdown_inner(timeout));
        }
    }
}

/// Runs `f`, which blocks: on a worker thread of a tokio multi-thread runtime inside
/// `block_in_place` (its other tasks move to another worker), elsewhere as it is.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "tokio")]
    {
        use tokio::runtime::{Handle, RuntimeFlavor};
        // `block_in_place` panics on a current-thread runtime; there, waiting in place is
        // all a synchronous call can do.
        if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread) {
            return tokio::task::block_in_place(f);
        }
    }
    f()
}

/// A cloneable, read-only view of a pipeline's counters and health, from
/// [`Guard::handle`]: share it with a health endpoint or a metrics exporter while the
/// [`Guard`] stays with whoever shuts the pipeline down. Reading it is a few atomic loads
/// and never waits on the worker.
#[derive(Clone)]
pub struct MetricsHandle {
    config: Arc<Config>,
    counters: Arc<crate::metrics::Counters>,
    // Weak: a handle kept by a web server must not keep the pipeline (and its spool
    // directory) alive after the shutdown.
    queue: Weak<Queue>,
    diag: Arc<Diagnostics>,
    shut_down: Arc<AtomicBool>,
}

impl std::fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsHandle")
            .field("service_name", &self.config.service_name)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl MetricsHandle {
    /// The counters, at any time (also after the shutdown: the final totals).
    pub fn metrics(&self) -> Metrics {
        let mut m = self
            .counters
            .snapshot(self.config.sanitizer.redaction_counts());
        if let Some(q) = self.queue.upgrade() {
            m.worker_stopped = q.is_worker_stopped();
            m.queue_depth = q.depth() as u64;
        }
        m
    }

    /// The totals a flush or shutdown would report now.
    pub fn report(&self) -> Report {
        Report::from(&self.metrics())
    }

    /// Whether the pipeline runs, its worker gave up, or it was shut down.
    pub fn status(&self) -> HealthStatus {
        if self.shut_down.load(Ordering::SeqCst) {
            return HealthStatus::ShutDown;
        }
        if self.config.disabled {
            return HealthStatus::Disabled;
        }
        match self.queue.upgrade() {
            None => HealthStatus::ShutDown,
            Some(q) if q.is_worker_stopped() => HealthStatus::WorkerStopped,
            Some(_) => HealthStatus::Running,
        }
    }

    /// The status with what is going wrong and the counters, ready to serialize for a
    /// health endpoint. The status is [`HealthStatus::Degraded`] while a problem keeps
    /// events from getting through (see [`crate::diagnostics::Condition::degrades`]).
    pub fn health(&self) -> Health {
        Health::new(
            self.config.service_name.clone(),
            self.status(),
            self.diag.problems(),
            self.metrics(),
        )
    }
}
