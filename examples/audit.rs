//! `audit!` and `security!`: ordinary tracing events (so `fmt` prints them too) that the
//! OmniNode layer ships to the audit and security topics.
//!
//! ```sh
//! OMNINODE_KAFKA_BOOTSTRAP_SERVERS=$(scripts/broker start) cargo run --example audit
//! ```

use std::time::Duration;

use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (layer, guard) = tracing_omninode::builder()
        .service_name("audit-example")
        .tenant_id("acme") // used when neither the macro nor a span names a tenant
        .build()?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .with(layer)
        .init();

    // Required fields are checked at compile time: leaving out `outcome` does not compile.
    tracing_omninode::audit!(
        action = "user.delete",
        actor = "alice",
        resource = "user/42",
        outcome = "success",
        reason = "gdpr request"
    );

    // The tenant can come from the enclosing span ...
    let span = tracing::info_span!("tenant", tenant_id = "globex");
    span.in_scope(|| {
        tracing_omninode::security!(
            event_type = "api_key_used",
            user_id = "svc-billing",
            resource = "invoices",
            decision = "allow"
        );
    });
    // ... or from the macro itself.
    tracing_omninode::security!(
        tenant_id = "initech",
        event_type = "permission_check",
        user_id = "bob",
        resource = "payroll",
        decision = "deny"
    );

    // A wrong value is not lost: it goes to the DLQ as a validation failure.
    tracing_omninode::audit!(
        action = "user.update",
        actor = "alice",
        resource = "user/42",
        outcome = "maybe"
    );

    println!("{}", guard.shutdown(Duration::from_secs(10))?);
    Ok(())
}
