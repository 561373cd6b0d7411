//! `audit!` and `security!`: ordinary tracing events (so `fmt` and other layers see them)
//! that the OmniNode layer maps to the audit and security topics.
//!
//! They are emitted at `ERROR` level. tracing's compile-time `max_level_*` /
//! `release_max_level_*` features remove every event above the chosen level from the
//! binary, and a global `EnvFilter` such as `RUST_LOG=warn` disables them at run time;
//! `ERROR` is the one level that survives every setting but `off`. The payload has no level,
//! so the level changes nothing on the wire (a `fmt` layer prints them as `ERROR` lines).
//! With `max_level_off` (or `release_max_level_off` in a release build) a crate using either
//! macro does not compile: a `const` assertion in the expansion says why, instead of the
//! events silently disappearing.

/// Emits an audit event (`omninode.logging.audit.v1`).
///
/// `action`, `actor`, `resource` and `outcome` are required, in this order (a missing one
/// is a compile error); `outcome` must be `"success"` or `"failure"` (checked on the worker: a
/// wrong value sends the event to the DLQ as a validation failure). `tenant_id` is optional
/// and comes first (else the enclosing span's `tenant_id`, else the configured tenant). More
/// fields may follow, then an optional format message, as in any tracing event; every value
/// takes tracing's `%` (Display) and `?` (Debug) sigils. The message ships as a `message`
/// field of the payload.
///
/// ```
/// # struct UserId(u32);
/// # impl std::fmt::Display for UserId {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "user/{}", self.0) }
/// # }
/// let user = "alice";
/// let id = UserId(42);
/// tracing_omninode::audit!(action = "user.delete", actor = %user, resource = %id,
///     outcome = "success", reason = "gdpr request");
/// tracing_omninode::audit!(tenant_id = "acme", action = "user.export", actor = ?user,
///     resource = "user/42", outcome = "failure", "export refused after {} tries", 3);
/// ```
///
/// Leaving out a required field does not compile:
///
/// ```compile_fail
/// tracing_omninode::audit!(action = "user.delete", actor = "alice", resource = "user/42");
/// ```
///
/// Neither does a required field out of order:
///
/// ```compile_fail
/// tracing_omninode::audit!(actor = "alice", action = "user.delete", resource = "user/42",
///     outcome = "success");
/// ```
#[macro_export]
macro_rules! audit {
    ($($input:tt)+) => {
        $crate::__omninode_event!(audit_tenant "omninode::audit" [] $($input)+)
    };
}

/// Emits a security event (`omninode.logging.security.v1`).
///
/// `event_type` (e.g. `"api_key_used"`), `user_id`, `resource` and `decision`
/// (`"allow"`/`"deny"`) are required, in this order; `tenant_id`, more fields, the `%`/`?`
/// sigils and a trailing format message work as for [`audit!`].
///
/// ```
/// let user = String::from("u-7");
/// tracing_omninode::security!(event_type = "permission_check", user_id = %user,
///     resource = "billing/invoices", decision = "deny", "no role grants {}", "invoices.read");
/// ```
///
/// ```compile_fail
/// tracing_omninode::security!(event_type = "permission_check", user_id = "u-7");
/// ```
#[macro_export]
macro_rules! security {
    ($($input:tt)+) => {
        $crate::__omninode_event!(security_tenant "omninode::security" [] $($input)+)
    };
}

/// The tracing event behind [`audit!`] and [`security!`]: a muncher that takes the optional
/// `tenant_id` and then each required field in order (each value `expr`, `%expr` or
/// `?expr`), then hands everything with the rest of the input to `tracing::event!` at
/// `ERROR` on the given target.
#[doc(hidden)]
#[macro_export]
macro_rules! __omninode_event {
    (audit_tenant $t:literal [] tenant_id = $($rest:tt)+) => {
        $crate::__omninode_value!(audit_action $t [] tenant_id ; $($rest)+)
    };
    (audit_tenant $t:literal [] $($rest:tt)+) => {
        $crate::__omninode_event!(audit_action $t [] $($rest)+)
    };
    (audit_action $t:literal [$($acc:tt)*] action = $($rest:tt)+) => {
        $crate::__omninode_value!(audit_actor $t [$($acc)*] action ; $($rest)+)
    };
    (audit_actor $t:literal [$($acc:tt)*] actor = $($rest:tt)+) => {
        $crate::__omninode_value!(audit_resource $t [$($acc)*] actor ; $($rest)+)
    };
    (audit_resource $t:literal [$($acc:tt)*] resource = $($rest:tt)+) => {
        $crate::__omninode_value!(audit_outcome $t [$($acc)*] resource ; $($rest)+)
    };
    (audit_outcome $t:literal [$($acc:tt)*] outcome = $($rest:tt)+) => {
        $crate::__omninode_value!(emit $t [$($acc)*] outcome ; $($rest)+)
    };
    (security_tenant $t:literal [] tenant_id = $($rest:tt)+) => {
        $crate::__omninode_value!(security_type $t [] tenant_id ; $($rest)+)
    };
    (security_tenant $t:literal [] $($rest:tt)+) => {
        $crate::__omninode_event!(security_type $t [] $($rest)+)
    };
    (security_type $t:literal [$($acc:tt)*] event_type = $($rest:tt)+) => {
        $crate::__omninode_value!(security_user $t [$($acc)*] event_type ; $($rest)+)
    };
    (security_user $t:literal [$($acc:tt)*] user_id = $($rest:tt)+) => {
        $crate::__omninode_value!(security_resource $t [$($acc)*] user_id ; $($rest)+)
    };
    (security_resource $t:literal [$($acc:tt)*] resource = $($rest:tt)+) => {
        $crate::__omninode_value!(security_decision $t [$($acc)*] resource ; $($rest)+)
    };
    (security_decision $t:literal [$($acc:tt)*] decision = $($rest:tt)+) => {
        $crate::__omninode_value!(emit $t [$($acc)*] decision ; $($rest)+)
    };
    (emit $t:literal [$($acc:tt)*]) => {{
        $crate::__omninode_level_check!();
        ::tracing::event!(target: $t, ::tracing::Level::ERROR $($acc)*)
    }};
    (emit $t:literal [$($acc:tt)*] $($rest:tt)+) => {{
        $crate::__omninode_level_check!();
        ::tracing::event!(target: $t, ::tracing::Level::ERROR $($acc)*, $($rest)+)
    }};
}

/// One field value of [`__omninode_event!`]: `%expr`, `?expr` or `expr`, then the state
/// `$next` goes on with the rest.
#[doc(hidden)]
#[macro_export]
macro_rules! __omninode_value {
    ($next:ident $t:literal [$($acc:tt)*] $name:ident ; % $v:expr $(, $($rest:tt)*)?) => {
        $crate::__omninode_event!($next $t [$($acc)* , $name = % $v] $($($rest)*)?)
    };
    ($next:ident $t:literal [$($acc:tt)*] $name:ident ; ? $v:expr $(, $($rest:tt)*)?) => {
        $crate::__omninode_event!($next $t [$($acc)* , $name = ? $v] $($($rest)*)?)
    };
    ($next:ident $t:literal [$($acc:tt)*] $name:ident ; $v:expr $(, $($rest:tt)*)?) => {
        $crate::__omninode_event!($next $t [$($acc)* , $name = $v] $($($rest)*)?)
    };
}

/// Fails the build where an audit or security event would be compiled out by tracing's
/// `max_level_off` / `release_max_level_off`.
#[doc(hidden)]
#[macro_export]
macro_rules! __omninode_level_check {
    () => {
        const _: () = ::core::assert!(
            ::tracing::level_filters::STATIC_MAX_LEVEL
                .into_level()
                .is_some(),
            "tracing's max_level_off / release_max_level_off would remove audit! and security! events from this build"
        );
    };
}
