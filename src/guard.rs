//! The guard returned with the layer: flush, bounded shutdown and counters.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::capture::agent::OpenAgents;
use crate::capture::queue::Queue;
use crate::config::Config;
use crate::contract::limits::deadline_in;
use crate::metrics::{Counters, Metrics, Report};
use crate::pipeline::worker::Control;

/// Time allowed past a deadline for the worker's reply to travel back.
const REPLY_MARGIN: Duration = Duration::from_millis(250);

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
/// the configured default deadline; call [`Guard::shutdown`] to choose the deadline and see
/// the report.
#[must_use = "dropping the guard shuts the pipeline down at once; keep it for the life of the program"]
#[derive(Debug)]
pub struct Guard {
    config: Arc<Config>,
    counters: Arc<Counters>,
    queue: Arc<Queue>,
    agents: Arc<OpenAgents>,
    ctrl: Sender<Control>,
    handle: Option<JoinHandle<()>>,
}

/// What the guard is made of.
pub(crate) struct GuardParts {
    pub config: Arc<Config>,
    pub counters: Arc<Counters>,
    pub queue: Arc<Queue>,
    pub agents: Arc<OpenAgents>,
    pub ctrl: Sender<Control>,
    pub handle: JoinHandle<()>,
}

impl Guard {
    pub(crate) fn new(parts: GuardParts) -> Self {
        Guard {
            config: parts.config,
            counters: parts.counters,
            queue: parts.queue,
            agents: parts.agents,
            ctrl: parts.ctrl,
            handle: Some(parts.handle),
        }
    }

    /// The counters, at any time.
    pub fn metrics(&self) -> Metrics {
        let mut m = self
            .counters
            .snapshot(self.config.sanitizer.redaction_counts());
        m.worker_stopped = self.queue.is_worker_stopped();
        m
    }

    /// The spool directory this pipeline holds: the configured one, or `<dir>.<n>` when
    /// another live pipeline held it at build time.
    pub fn spool_dir(&self) -> &std::path::Path {
        &self.config.spool_dir
    }

    /// Sends everything captured so far and waits for the broker's answers, at most
    /// `timeout`. Never waits on the network itself: it waits for the worker's reply.
    pub fn flush(&self, timeout: Duration) -> Result<Report, PipelineError> {
        if self.handle.is_none() {
            return Err(PipelineError::AlreadyShutdown);
        }
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

    fn report(&self) -> Report {
        Report::from(&self.metrics())
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

    /// Ends open agent executions, flushes, spools what could not be delivered by
    /// `timeout`, and stops the worker. Returns within `timeout` plus a small margin.
    pub fn shutdown(mut self, timeout: Duration) -> Result<Report, PipelineError> {
        self.shutdown_inner(timeout)
    }

    fn shutdown_inner(&mut self, timeout: Duration) -> Result<Report, PipelineError> {
        let Some(handle) = self.handle.take() else {
            return Err(PipelineError::AlreadyShutdown);
        };
        self.agents.fail_all(&self.queue);
        self.check_worker()?;
        let deadline = deadline_in(timeout);
        let (reply, answer) = crossbeam_channel::bounded(1);
        if self
            .ctrl
            .send(Control::Shutdown { deadline, reply })
            .is_err()
        {
            return Err(self.stopped_or(PipelineError::AlreadyShutdown));
        }
        match answer.recv_deadline(deadline_in(timeout.saturating_add(REPLY_MARGIN))) {
            Ok(report) => {
                // The worker still drops its producer (librdkafka's own teardown); wait for
                // that only if it is already done, never past the deadline.
                if handle.is_finished() {
                    let _ = handle.join();
                }
                Ok(report)
            }
            // The worker finishes on its own; we do not wait for it past the deadline.
            Err(_) => Err(self.stopped_or(PipelineError::Timeout(self.report()))),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.handle.is_some() {
            let timeout = self.config.shutdown_timeout;
            let _ = self.shutdown_inner(timeout);
        }
    }
}
