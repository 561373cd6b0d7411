//! Size limits of the contract (SPEC §3) and the one way text is cut to them.

/// Longest stack trace or DLQ error message carried, in bytes (8 KiB).
pub const STACK_TRACE_CAP: usize = 8 * 1024;

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
    fn cap_cuts_on_a_character_boundary() {
        let mut s = "aé".repeat(4); // 12 bytes, 'é' is 2
        cap(&mut s, 4);
        assert_eq!(s, "aéa");
        let mut short = String::from("abc");
        cap(&mut short, 10);
        assert_eq!(short, "abc");
    }
}
