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
    ($(tenant_id = $tenant:expr,)? action = $action:expr, actor = $actor:expr, resource = $resource:expr, outcome = $outcome:expr $(, $($rest:tt)*)?) => {
        $crate::__omninode_event!("omninode::audit"; $(tenant_id = $tenant,)? action = $action, actor = $actor, resource = $resource, outcome = $outcome $(, $($rest)*)?)
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
    ($(tenant_id = $tenant:expr,)? event_type = $kind:expr, user_id = $user:expr, resource = $resource:expr, decision = $decision:expr $(, $($rest:tt)*)?) => {
        $crate::__omninode_event!("omninode::security"; $(tenant_id = $tenant,)? event_type = $kind, user_id = $user, resource = $resource, decision = $decision $(, $($rest)*)?)
    };
}

/// The tracing event behind [`audit!`] and [`security!`]: INFO on the given target.
#[doc(hidden)]
#[macro_export]
macro_rules! __omninode_event {
    ($target:literal; $($fields:tt)*) => {
        ::tracing::event!(target: $target, ::tracing::Level::INFO, $($fields)*)
    };
}
