//! Size limits of the contract (SPEC §3) and the one way text is cut to them.

use std::time::{Duration, Instant};

/// Longest stack trace or DLQ error message carried, in bytes (8 KiB).
pub const STACK_TRACE_CAP: usize = 8 * 1024;

/// How far ahead a deadline is put when the caller's timeout does not fit the clock
/// (`Duration::MAX` meaning "as long as it takes").
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The instant `timeout` from now; any timeout is accepted, up to `Duration::MAX`.
pub(crate) fn deadline_in(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout.min(FOREVER))
        .or_else(|| now.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(now)
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn cap(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_timeout_gives_a_deadline() {
        let before = Instant::now();
        assert!(deadline_in(Duration::ZERO) >= before);
        assert!(deadline_in(Duration::from_secs(5)) >= before + Duration::from_secs(5));
        assert!(deadline_in(Duration::MAX) > before + Duration::from_secs(365 * 24 * 3600));
    }

    #[test]
    fn cap_cuts_on_a_character_boundary() {
        let mut s = "aé".repeat(4); // 12 bytes, 'é' is 2
        cap(&mut s, 4);
        assert_eq!(s, "aéa");
        let mut short = String::from("abc");
        cap(&mut short, 10);
        assert_eq!(short, "abc");
    }
}
