//! `Secret<T>`: a value whose `Debug` and `Display` print only the marker.

use std::fmt;

/// A value that cannot leak: `Debug` and `Display` print `[REDACTED]`, so recording it in a
/// tracing field (`password = %secret` or `?secret`) records only the marker.
/// (`tracing::Value` is sealed, so recording it bare is not possible.)
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The wrapped value, for the code that really needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Recorded in a tracing field (with `%` or `?`), a `Secret` is only its marker.
    #[test]
    fn secret_recorded_in_tracing_fields_is_the_marker() {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let token = Secret::new(String::from("ghp_live_value_123"));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(token = %token, debug = ?token, "login");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("token=[REDACTED] debug=[REDACTED]"), "{out}");
        assert!(!out.contains("ghp_live_value_123"), "{out}");
        assert_eq!(token.expose(), "ghp_live_value_123");
    }
}
