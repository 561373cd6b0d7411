//! The only place that names rdkafka: the pipeline's producer, the classification of
//! librdkafka errors into the taxonomy, and topic administration. No rdkafka type leaves
//! this folder, so the crate could change Kafka client here alone.

pub mod admin_ops;
pub(crate) mod classify;
pub mod client;
pub mod consumer;
pub(crate) mod producer;
pub mod topics;
