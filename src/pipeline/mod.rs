//! The worker thread: drains the queue in batches ([`worker`]), assembles each captured
//! event into a sanitized, validated wire record ([`assemble`]), produces it, and routes
//! every failure ([`route`], a pure decision, carried out by [`failure`]) to a retry, the
//! dead-letter topic, the spool ([`spooler`], the one way in) or a counted skip. It also
//! replays the spool ([`replay`]) and answers the guard's flush and shutdown requests.

/// A fault-injection point for the crate's own tests (feature `failpoints`, configured with
/// `fail::cfg`); it compiles to nothing without the feature.
macro_rules! fault {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    };
}

pub(crate) mod assemble;
mod failure;
mod replay;
pub(crate) mod route;
pub(crate) mod spooler;
mod wal;
pub(crate) mod worker;
