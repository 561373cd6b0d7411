//! The wire contract of `../shared/SPEC.md`, as pure data and pure functions: the catalog of
//! event types and their payloads, the envelope, the Kafka record with its key and headers,
//! validation, timestamps, the error taxonomy and the dead-letter record. Nothing here does
//! I/O, spawns a thread or names rdkafka; both threads and the operations tools build on it.

pub mod catalog;
pub mod dlq;
pub mod envelope;
pub mod events;
pub mod limits;
pub mod partition;
pub mod schema;
pub mod taxonomy;
pub mod timestamp;
pub mod validate;
pub mod wire;
