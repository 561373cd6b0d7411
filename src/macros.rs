//! `audit!` and `security!`: ordinary tracing events (so `fmt` and other layers see them)
//! that the OmniNode layer maps to the audit and security topics.

/// Emits an audit event (`omninode.logging.audit.v1`).
///
/// `action`, `actor`, `resource` and `outcome` are required (a missing one is a compile
/// error); `outcome` must be `"success"` or `"failure"` (checked on the worker: a wrong value
/// sends the event to the DLQ as a validation failure). `tenant_id` is optional (else the
/// enclosing span's `tenant_id`, else the configured tenant); more fields may follow.
///
/// ```
/// tracing_omninode::audit!(action = "user.delete", actor = "alice", resource = "user/42",
///     outcome = "success", reason = "gdpr request");
/// ```
///
/// Leaving out a required field does not compile:
///
/// ```compile_fail
/// tracing_omninode::audit!(action = "user.delete", actor = "alice", resource = "user/42");
/// ```
#[macro_export]
macro_rules! audit {
    (action = $action:expr, actor = $actor:expr, resource = $resource:expr, outcome = $outcome:expr $(, $($rest:tt)*)?) => {
        ::tracing::event!(
            target: "omninode::audit",
            ::tracing::Level::INFO,
            action = $action,
            actor = $actor,
            resource = $resource,
            outcome = $outcome
            $(, $($rest)*)?
        )
    };
    (tenant_id = $tenant:expr, $($rest:tt)*) => {
        $crate::__audit_with_tenant!($tenant; $($rest)*)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __audit_with_tenant {
    ($tenant:expr; action = $action:expr, actor = $actor:expr, resource = $resource:expr, outcome = $outcome:expr $(, $($rest:tt)*)?) => {
        ::tracing::event!(
            target: "omninode::audit",
            ::tracing::Level::INFO,
            tenant_id = $tenant,
            action = $action,
            actor = $actor,
            resource = $resource,
            outcome = $outcome
            $(, $($rest)*)?
        )
    };
}

/// Emits a security event (`omninode.logging.security.v1`).
///
/// `event_type` (e.g. `"api_key_used"`), `user_id`, `resource` and `decision`
/// (`"allow"`/`"deny"`) are required; `tenant_id` is optional as for [`audit!`].
///
/// ```
/// tracing_omninode::security!(event_type = "permission_check", user_id = "u-7",
///     resource = "billing/invoices", decision = "deny");
/// ```
///
/// ```compile_fail
/// tracing_omninode::security!(event_type = "permission_check", user_id = "u-7");
/// ```
#[macro_export]
macro_rules! security {
    (event_type = $kind:expr, user_id = $user:expr, resource = $resource:expr, decision = $decision:expr $(, $($rest:tt)*)?) => {
        ::tracing::event!(
            target: "omninode::security",
            ::tracing::Level::INFO,
            event_type = $kind,
            user_id = $user,
            resource = $resource,
            decision = $decision
            $(, $($rest)*)?
        )
    };
    (tenant_id = $tenant:expr, $($rest:tt)*) => {
        $crate::__security_with_tenant!($tenant; $($rest)*)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __security_with_tenant {
    ($tenant:expr; event_type = $kind:expr, user_id = $user:expr, resource = $resource:expr, decision = $decision:expr $(, $($rest:tt)*)?) => {
        ::tracing::event!(
            target: "omninode::security",
            ::tracing::Level::INFO,
            tenant_id = $tenant,
            event_type = $kind,
            user_id = $user,
            resource = $resource,
            decision = $decision
            $(, $($rest)*)?
        )
    };
}
