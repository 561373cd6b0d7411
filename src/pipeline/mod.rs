//! The worker thread: drains the queue in batches, assembles each captured event into a
//! sanitized, validated wire record, produces it, and routes every failure to a retry, the
//! dead-letter topic, the spool or a counted skip. It also replays the spool and answers the
//! guard's flush and shutdown requests.

pub(crate) mod assemble;
pub(crate) mod worker;
