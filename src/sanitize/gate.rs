//! Which rules run on a text: one Aho-Corasick pass over the rules' literal keywords (a key
//! keyword counts only where a local check finds the rule's shape: a separator after the
//! key, a quote before it, ...), byte-level scans for the shapes without a literal, and the
//! user patterns, which always run.

use aho_corasick::automaton::Automaton;
use aho_corasick::Input;

use super::engine::Sanitizer;
use super::keys::{is_key_byte, MAX_KEY_LEN};

/// Byte classes of the token alphabet used by the structural scans.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A Discord bot token shape: 23+ token bytes, `.`, 6 token bytes, `.`.
pub(super) fn discord_scan(text: &str) -> bool {
    let t = text.as_bytes();
    (23..t.len().saturating_sub(7)).any(|i| {
        t[i] == b'.'
            && t[i + 7] == b'.'
            && t[i + 1..i + 7].iter().all(|&b| is_token_byte(b))
            && t[i - 23..i].iter().all(|&b| is_token_byte(b))
    })
}

/// A Telegram bot token shape: 5+ digits, `:`, 35 token bytes.
pub(super) fn telegram_scan(text: &str) -> bool {
    let t = text.as_bytes();
    (5..t.len().saturating_sub(35)).any(|i| {
        t[i] == b':'
            && t[i - 5..i].iter().all(u8::is_ascii_digit)
            && t[i + 1..i + 36].iter().all(|&b| is_token_byte(b))
    })
}

/// The start of the identifier around `at`.
fn key_start(t: &[u8], at: usize) -> usize {
    let floor = at.saturating_sub(MAX_KEY_LEN);
    let mut s = at;
    while s > floor && is_key_byte(t[s - 1]) {
        s -= 1;
    }
    s
}

/// The end of the identifier that contains `at`.
fn key_end(t: &[u8], at: usize) -> usize {
    let ceil = t.len().min(at + MAX_KEY_LEN);
    let mut e = at;
    while e < ceil && is_key_byte(t[e]) {
        e += 1;
    }
    e
}

/// `key = v`, `"key": v`, `key := v`, `['key'] = v`: the identifier holding the keyword at
/// `at` is followed by a separator (after an optional quote or `]` and up to 3 blanks).
pub(super) fn near_assignment(t: &[u8], at: usize) -> bool {
    let mut i = key_end(t, at);
    if t.get(i) == Some(&b'\\') {
        i += 1;
    }
    if matches!(t.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    if t.get(i) == Some(&b']') {
        i += 1;
    }
    let mut blanks = 0;
    while blanks < 3 && matches!(t.get(i), Some(b' ' | b'\t')) {
        i += 1;
        blanks += 1;
    }
    matches!(t.get(i), Some(b'=' | b':'))
}

/// `("key", "v")`: the identifier is quoted and followed by a comma.
pub(super) fn near_call_argument(t: &[u8], at: usize) -> bool {
    let s = key_start(t, at);
    let e = key_end(t, at);
    s > 0
        && matches!(t[s - 1], b'"' | b'\'')
        && t[e..]
            .iter()
            .find(|&&b| !matches!(b, b'"' | b'\'' | b'\\' | b' ' | b'\t'))
            == Some(&b',')
}

/// `<key>v</key>`.
pub(super) fn near_xml_element(t: &[u8], at: usize) -> bool {
    let s = key_start(t, at);
    s > 0 && t[s - 1] == b'<' && t.get(key_end(t, at)) == Some(&b'>')
}

/// `--key v`, `-key v`.
pub(super) fn near_cli_flag(t: &[u8], at: usize) -> bool {
    let s = key_start(t, at);
    t.get(s) == Some(&b'-')
        && (s == 0 || matches!(t[s - 1], b' ' | b'\t'))
        && matches!(t.get(key_end(t, at)), Some(b' ' | b'\t'))
}

/// `pin 4821`, `otp 492031`: the keyword is a word of its own (3 or 4 letters: `pin`,
/// `otp`, `totp`, `hotp`), followed by a blank.
pub(super) fn near_code_word(t: &[u8], at: usize) -> bool {
    let mut e = at;
    while e < t.len() && e - at < 5 && t[e].is_ascii_alphabetic() {
        e += 1;
    }
    (at == 0 || !(t[at - 1].is_ascii_alphanumeric() || t[at - 1] == b'_'))
        && (3..=4).contains(&(e - at))
        && matches!(t.get(e), Some(b' ' | b'\t'))
}

/// `-p value`: a short flag of its own (`docker login -u ci -p x`).
pub(super) fn near_short_flag(t: &[u8], at: usize) -> bool {
    (at == 0 || matches!(t[at - 1], b' ' | b'\t')) && matches!(t.get(at + 2), Some(b' ' | b'\t'))
}

/// `login <token>`: the word `login` of its own, then blanks and a run of at least 16
/// bytes of the rule's value class (no blank, quote, `` ` ``, `,` or `;`: `login
/// succeeded","user"` in a JSON line does not open it).
pub(super) fn near_login_token(t: &[u8], at: usize) -> bool {
    let word = at + "login".len();
    let mut i = word;
    while matches!(t.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    (at == 0 || !t[at - 1].is_ascii_alphanumeric())
        && i > word
        && t.len() >= i + 16
        && t[i..i + 16]
            .iter()
            .all(|&b| !b.is_ascii_whitespace() && !b"\"'`,;".contains(&b))
}

/// Commands that take a name and then its value, separated by blanks (`config set <name>
/// <value>`, `setenv`, `export`, Dockerfile `ENV`, `heroku config:set`, `git config`).
pub(super) const SET_COMMANDS: &[&str] = &[
    "set",
    "setenv",
    "setx",
    "export",
    "env",
    "config",
    "configure",
    "put",
];

/// `set <key> <value>` (see [`SET_COMMANDS`]): the word holding the keyword (which may
/// start with a path, as npm's `//registry/:_authToken`) is followed by a blank, and comes
/// after a set command, possibly with flags between (`set -gx KEY v`, `git config --global
/// KEY v`).
pub(super) fn near_set_command(t: &[u8], at: usize) -> bool {
    let mut e = key_end(t, at);
    // A quoted name (`user-secrets set "Smtp:Password" "v"`).
    if matches!(t.get(e), Some(b'"' | b'\'')) {
        e += 1;
    }
    if !matches!(t.get(e), Some(b' ' | b'\t')) {
        return false;
    }
    let floor = at.saturating_sub(MAX_KEY_LEN);
    let mut i = at;
    while i > floor && !t[i - 1].is_ascii_whitespace() {
        i -= 1;
    }
    // Back over at most three words: flags, then the command.
    for _ in 0..3 {
        let mut e = i;
        while e > 0 && matches!(t[e - 1], b' ' | b'\t') {
            e -= 1;
        }
        if e == i {
            return false;
        }
        let floor = e.saturating_sub(16);
        let mut s = e;
        while s > floor && !t[s - 1].is_ascii_whitespace() {
            s -= 1;
        }
        let word = &t[s..e];
        if word.first() == Some(&b'-') && word.len() > 1 {
            i = s;
            continue;
        }
        let command = word.rsplit(|&b| b == b':').next().unwrap_or(word);
        return SET_COMMANDS
            .iter()
            .any(|c| command.eq_ignore_ascii_case(c.as_bytes()));
    }
    false
}

/// Active-rule bitset: inline for up to 256 rules.
pub(super) struct Active {
    inline: [u64; 4],
    heap: Vec<u64>,
}

impl Active {
    pub(super) fn new(n: usize) -> Self {
        Active {
            inline: [0; 4],
            heap: if n > 256 {
                vec![0; n.div_ceil(64)]
            } else {
                Vec::new()
            },
        }
    }

    fn words(&self) -> &[u64] {
        if self.heap.is_empty() {
            &self.inline
        } else {
            &self.heap
        }
    }

    fn set(&mut self, i: usize) {
        let words: &mut [u64] = if self.heap.is_empty() {
            &mut self.inline
        } else {
            &mut self.heap
        };
        words[i / 64] |= 1 << (i % 64);
    }

    fn get(&self, i: usize) -> bool {
        self.words()[i / 64] & (1 << (i % 64)) != 0
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words().iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

impl Sanitizer {
    /// The rules whose gate opens on `text`, or `None` when none does (the text has no
    /// candidate and comes back borrowed).
    pub(super) fn open_gates(&self, text: &str) -> Option<Active> {
        let inner = &*self.inner;
        let mut active = Active::new(inner.rules.len());
        let mut any = false;
        let bytes = text.as_bytes();
        let hits = inner
            .prefilter
            .try_find_overlapping_iter(Input::new(text))
            .expect("an unanchored standard DFA supports overlapping search");
        for m in hits {
            for &r in &inner.gate[m.pattern().as_usize()] {
                if active.get(r) || inner.rules[r].near.is_some_and(|f| !f(bytes, m.start())) {
                    continue;
                }
                active.set(r);
                any = true;
            }
        }
        for &(r, scan) in &inner.scans {
            if scan(text) {
                active.set(r);
                any = true;
            }
        }
        for &r in &inner.always {
            active.set(r);
            any = true;
        }
        any.then_some(active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each local check, at the first occurrence of its keyword in the text.
    #[test]
    fn local_checks_of_the_command_line_rules() {
        type Near = fn(&[u8], usize) -> bool;
        let table: &[(Near, &str, &str, bool)] = &[
            (near_code_word, "pin 4821", "pin", true),
            (near_code_word, "totp 118822", "totp", true),
            (near_code_word, "spinner 4821", "pin", false),
            (near_code_word, "pinned 4821", "pin", false),
            (near_code_word, "user_pin 4821", "pin", false),
            (near_code_word, "pin=4821", "pin", false),
            (near_set_command, "config set api_key v", "key", true),
            (near_set_command, "set -gx API_TOKEN v", "TOKEN", true),
            (
                near_set_command,
                "npm config set //r.org/:_authToken v",
                "auth",
                true,
            ),
            (
                near_set_command,
                r#"user-secrets set "Smtp:Password" "v""#,
                "Pass",
                true,
            ),
            (
                near_set_command,
                "heroku config:set SECRET_KEY v",
                "SECRET",
                true,
            ),
            (near_set_command, "rotate api_key v", "key", false),
            (near_set_command, "config set api_key=v", "key", false),
            (near_short_flag, "login -u ci -p x", "-p", true),
            (near_short_flag, "login -u ci -px", "-p", false),
            (
                near_login_token,
                "cargo login Zq8vT2mK9pL4xW7rYb3n",
                "login",
                true,
            ),
            (
                near_login_token,
                r#""msg":"login succeeded","user":"u1""#,
                "login",
                false,
            ),
            (
                near_login_token,
                "relogin Zq8vT2mK9pL4xW7rYb3n",
                "login",
                false,
            ),
        ];
        for &(near, text, keyword, want) in table {
            let at = text.find(keyword).expect("keyword in text");
            assert_eq!(near(text.as_bytes(), at), want, "{text}");
        }
    }
}
