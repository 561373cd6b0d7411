//! Classification of librdkafka errors into the taxonomy of SPEC §3 (one `match`).
//!
//! The mapping follows `reference/kafka-error-taxonomy.md` (librdkafka's own retry
//! behaviour, persistence status and the Apache Kafka "retriable" column).

use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};

use crate::contract::taxonomy::{Classified, ErrorClass};

/// What the pipeline knows besides the error itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ClassifyContext {
    /// The last global (client-level) error librdkafka reported, if recent.
    pub last_global: Option<C>,
    /// For `Fatal`: the underlying code from `fatal_error()`.
    pub fatal_cause: Option<C>,
}

/// Classifies a librdkafka error code (one `match`, the table of SPEC §3).
pub(crate) fn classify_code(code: C, ctx: ClassifyContext) -> Classified {
    use ErrorClass::*;
    let mut rebuild = false;
    let class = match code {
        // A timeout after the cluster refused our credentials is a security failure, not
        // an outage: retrying cannot help.
        C::MessageTimedOut
            if matches!(
                ctx.last_global,
                Some(C::Authentication | C::SaslAuthenticationFailed | C::SSL)
            ) =>
        {
            NonRetryableSecurity
        }
        C::MessageTimedOut => RetryableDependency,
        C::OperationTimedOut | C::TimedOutQueue | C::QueueFull => RetryableTransient,
        C::PurgeQueue | C::PurgeInflight | C::InvalidDifferentRecord => RetryableTransient,
        C::RequestTimedOut | C::NetworkException | C::ConcurrentTransactions => RetryableTransient,
        C::ThrottlingQuotaExceeded => RetryableTransient,
        C::BrokerTransportFailure | C::AllBrokersDown | C::Resolve => RetryableDependency,
        C::LeaderNotAvailable | C::NotLeaderForPartition => RetryableDependency,
        C::BrokerNotAvailable | C::ReplicaNotAvailable => RetryableDependency,
        C::NotEnoughReplicas | C::NotEnoughReplicasAfterAppend => RetryableDependency,
        C::KafkaStorageError | C::RebootstrapRequired => RetryableDependency,
        C::CoordinatorLoadInProgress | C::CoordinatorNotAvailable | C::NotCoordinator => {
            RetryableDependency
        }
        // A broker-side fault: a few delayed attempts (the dependency budget), then DLQ.
        C::Unknown => RetryableDependency,
        C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidMessage => {
            NonRetryableValidation
        }
        C::InvalidRecord | C::InvalidMessageSize | C::InvalidTimestamp => NonRetryableValidation,
        C::InvalidRequiredAcks | C::BadMessage | C::BadCompression => NonRetryableValidation,
        C::UnsupportedCompressionType | C::InvalidTopic => NonRetryableValidation,
        C::UnknownTopic | C::UnknownTopicOrPartition | C::UnknownTopicId => NonRetryableValidation,
        C::UnknownPartition | C::UnsupportedForMessageFormat | C::UnsupportedVersion => {
            NonRetryableValidation
        }
        C::UnsupportedFeature | C::InvalidArgument => NonRetryableValidation,
        C::TopicAuthorizationFailed | C::PolicyViolation | C::GroupAuthorizationFailed => {
            NonRetryablePolicy
        }
        C::ClusterAuthorizationFailed | C::TransactionalIdAuthorizationFailed => {
            NonRetryableSecurity
        }
        C::Authentication | C::SaslAuthenticationFailed => NonRetryableSecurity,
        C::UnsupportedSASLMechanism | C::IllegalSASLState => NonRetryableSecurity,
        // At delivery time an SSL error is a handshake/verification problem: configuration.
        C::SSL => NonRetryableSecurity,
        C::OutOfOrderSequenceNumber | C::DuplicateSequenceNumber => NonRetryableIdempotency,
        // The producer's identity is gone: the broker no longer knows its producer id or
        // epoch (a broker restarted without its producer state answers this way) and
        // refused the write. Fencing by a newer instance is a transactional notion, and this
        // producer is never transactional. The record was not written, so a rebuilt
        // producer (a new id) sends it again; skipping it would lose every event after such
        // a restart (`tests/broker_restart.rs`).
        C::UnknownProducerId
        | C::InvalidProducerEpoch
        | C::ProducerFenced
        | C::Fenced
        | C::InvalidProducerIdMapping => {
            rebuild = true;
            RetryableTransient
        }
        C::InvalidTransactionalState => NonRetryableIdempotency,
        C::TransactionCoordinatorFenced | C::State | C::GaplessGuarantee => NonRetryableIdempotency,
        // The producer is unusable. What it had in flight is not lost: it is re-sent on a
        // rebuilt producer, unless the underlying cause says that would be wrong.
        C::Fatal => {
            rebuild = true;
            match ctx.fatal_cause {
                Some(cause) if cause != C::Fatal => {
                    let inner = classify_code(cause, ClassifyContext::default()).class;
                    match inner {
                        NonRetryableIdempotency => RetryableTransient,
                        other => other,
                    }
                }
                _ => RetryableTransient,
            }
        }
        // Anything else is unexpected: DLQ it with its code rather than loop on it.
        _ => NonRetryableValidation,
    };
    Classified {
        class,
        code: format!("{code:?}"),
        rebuild_producer: rebuild,
    }
}

/// Classifies a [`KafkaError`] from rust-rdkafka.
pub(crate) fn classify(err: &KafkaError, ctx: ClassifyContext) -> Classified {
    match err {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => Classified {
            class: ErrorClass::NonRetryableValidation,
            code: "ClientConfig".into(),
            rebuild_producer: false,
        },
        KafkaError::Canceled => Classified {
            class: ErrorClass::RetryableTransient,
            code: "Canceled".into(),
            rebuild_producer: true,
        },
        other => match other.rdkafka_error_code() {
            Some(code) => classify_code(code, ctx),
            None => Classified {
                class: ErrorClass::NonRetryableValidation,
                code: format!("{other:?}"),
                rebuild_producer: false,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    #[test]
    fn table() {
        let cases = [
            (C::MessageTimedOut, RetryableDependency),
            (C::OperationTimedOut, RetryableTransient),
            (C::TimedOutQueue, RetryableTransient),
            (C::BrokerTransportFailure, RetryableDependency),
            (C::AllBrokersDown, RetryableDependency),
            (C::Resolve, RetryableDependency),
            (C::QueueFull, RetryableTransient),
            (C::PurgeQueue, RetryableTransient),
            (C::PurgeInflight, RetryableTransient),
            (C::InvalidDifferentRecord, RetryableTransient),
            (C::LeaderNotAvailable, RetryableDependency),
            (C::NotLeaderForPartition, RetryableDependency),
            (C::BrokerNotAvailable, RetryableDependency),
            (C::ReplicaNotAvailable, RetryableDependency),
            (C::RequestTimedOut, RetryableTransient),
            (C::NotEnoughReplicas, RetryableDependency),
            (C::NotEnoughReplicasAfterAppend, RetryableDependency),
            (C::KafkaStorageError, RetryableDependency),
            (C::CoordinatorLoadInProgress, RetryableDependency),
            (C::CoordinatorNotAvailable, RetryableDependency),
            (C::NotCoordinator, RetryableDependency),
            (C::NetworkException, RetryableTransient),
            (C::ConcurrentTransactions, RetryableTransient),
            (C::ThrottlingQuotaExceeded, RetryableTransient),
            (C::RebootstrapRequired, RetryableDependency),
            (C::Unknown, RetryableDependency),
            (C::MessageSizeTooLarge, NonRetryableValidation),
            (C::MessageBatchTooLarge, NonRetryableValidation),
            (C::InvalidMessage, NonRetryableValidation),
            (C::InvalidRecord, NonRetryableValidation),
            (C::InvalidMessageSize, NonRetryableValidation),
            (C::InvalidTimestamp, NonRetryableValidation),
            (C::InvalidRequiredAcks, NonRetryableValidation),
            (C::BadMessage, NonRetryableValidation),
            (C::BadCompression, NonRetryableValidation),
            (C::UnsupportedCompressionType, NonRetryableValidation),
            (C::InvalidTopic, NonRetryableValidation),
            (C::UnknownTopic, NonRetryableValidation),
            (C::UnknownTopicOrPartition, NonRetryableValidation),
            (C::UnknownTopicId, NonRetryableValidation),
            (C::UnknownPartition, NonRetryableValidation),
            (C::UnsupportedForMessageFormat, NonRetryableValidation),
            (C::UnsupportedVersion, NonRetryableValidation),
            (C::UnsupportedFeature, NonRetryableValidation),
            (C::InvalidArgument, NonRetryableValidation),
            (C::TopicAuthorizationFailed, NonRetryablePolicy),
            (C::PolicyViolation, NonRetryablePolicy),
            (C::GroupAuthorizationFailed, NonRetryablePolicy),
            (C::ClusterAuthorizationFailed, NonRetryableSecurity),
            (C::TransactionalIdAuthorizationFailed, NonRetryableSecurity),
            (C::Authentication, NonRetryableSecurity),
            (C::SaslAuthenticationFailed, NonRetryableSecurity),
            (C::UnsupportedSASLMechanism, NonRetryableSecurity),
            (C::IllegalSASLState, NonRetryableSecurity),
            (C::SSL, NonRetryableSecurity),
            (C::OutOfOrderSequenceNumber, NonRetryableIdempotency),
            (C::DuplicateSequenceNumber, NonRetryableIdempotency),
            (C::InvalidTransactionalState, NonRetryableIdempotency),
            (C::TransactionCoordinatorFenced, NonRetryableIdempotency),
            (C::State, NonRetryableIdempotency),
            (C::GaplessGuarantee, NonRetryableIdempotency),
        ];
        for (code, class) in cases {
            let got = classify_code(code, ClassifyContext::default());
            assert_eq!(got.class, class, "{code:?}");
            assert_eq!(got.code, format!("{code:?}"));
            assert!(!got.rebuild_producer, "{code:?}");
        }
    }

    #[test]
    fn a_lost_producer_identity_rebuilds_the_producer_and_resends() {
        for code in [
            C::UnknownProducerId,
            C::InvalidProducerEpoch,
            C::ProducerFenced,
            C::Fenced,
            C::InvalidProducerIdMapping,
        ] {
            let got = classify_code(code, ClassifyContext::default());
            assert_eq!(got.class, RetryableTransient, "{code:?}");
            assert!(got.rebuild_producer, "{code:?}");
        }
    }

    #[test]
    fn timeout_after_authentication_failure_is_security() {
        for global in [C::Authentication, C::SaslAuthenticationFailed, C::SSL] {
            let ctx = ClassifyContext {
                last_global: Some(global),
                ..Default::default()
            };
            assert_eq!(
                classify_code(C::MessageTimedOut, ctx).class,
                NonRetryableSecurity
            );
        }
        let ctx = ClassifyContext {
            last_global: Some(C::AllBrokersDown),
            ..Default::default()
        };
        assert_eq!(
            classify_code(C::MessageTimedOut, ctx).class,
            RetryableDependency
        );
    }

    #[test]
    fn fatal_means_rebuild() {
        let plain = classify_code(C::Fatal, ClassifyContext::default());
        assert!(plain.rebuild_producer);
        assert_eq!(plain.class, RetryableTransient);
        let ctx = ClassifyContext {
            fatal_cause: Some(C::InvalidRecord),
            ..Default::default()
        };
        let with_cause = classify_code(C::Fatal, ctx);
        assert!(with_cause.rebuild_producer);
        assert_eq!(with_cause.class, NonRetryableValidation);
    }

    #[test]
    fn client_errors() {
        let canceled = classify(&KafkaError::Canceled, ClassifyContext::default());
        assert!(canceled.rebuild_producer);
        let produced = classify(
            &KafkaError::MessageProduction(C::MessageSizeTooLarge),
            ClassifyContext::default(),
        );
        assert_eq!(produced.class, NonRetryableValidation);
    }
}
