//! The secret sanitizer (SPEC §6): every string that leaves the process passes through it.
//!
//! Four kinds of rule:
//! - **key rules**: a value is redacted when its key names a secret (`password`, `db_pass`,
//!   `OPENAI_API_KEY`, `sasl.password`, `X-Api-Key`, ...), in JSON objects at any depth and
//!   in `key=value`, `key: value`, `"key": "value"`, `<key>value</key>`, `--key value`,
//!   `getenv("key", "value")`, `key="KEY" value="v"` attribute pairs and `name: KEY` /
//!   `value: v` environment lists, and a name and its value after a set command (`config set
//!   <name> <value>`, `setenv`, `export`, `set -gx`, `heroku config:set`, `git config`,
//!   `consul kv put path/<name> <value>`).
//!   A key whose words include `pin`, `otp`, `totp` or `hotp` (`user_pin`, `pinCode`,
//!   `otp_code`; not `spinner` or `topic`) names a PIN or one-time code, a secret even as a
//!   short number. Keys that only *suggest* a secret (`hmac`, `seed`,
//!   `signature`, `user_auth`) need a value that looks random (length, alphabet, entropy);
//! - **context rules**: `-u user:pass` / `--user` on command lines, the password flags of
//!   `mysql`, `sshpass`, `redis-cli`, `confluent api-key store`, `login -u user -p x`
//!   (docker, oc, cf, az) and `twine upload -p`, a secret store's `--value` / `--body` /
//!   `--secret-string`, `http-basic.<repo> <user> <password>` (poetry, composer), `login
//!   <random token>`, SQL's `IDENTIFIED BY 'x'`, `password 'value'`,
//!   `shared value '<random>'`, `Authorization:` / `X-*-Api-Key:` headers, bearer and basic
//!   credentials, passwords inside URLs, connection strings and Oracle's `user/pass@`, JAAS
//!   `password="..."`, a PIN or one-time code after its word (`pin 4821`, `otp 492031`);
//! - **value detectors**: prefix-anchored patterns for provider API keys, cloud keys, VCS
//!   tokens, chat tokens and webhooks, payment keys, JWTs and PEM private keys (also
//!   JSON-escaped). A detector owns its prefix: a value under a secret key that starts with a
//!   known prefix (`xoxb-`, `ghp_`, `sk-ant-`, ...) but does not have the format is a
//!   near-miss and is kept;
//! - **high-entropy strings** (detect-secrets' rule): a quoted string (or a JSON string
//!   under a key) of the hex or base64 alphabet, at least 20 long, with letters and digits
//!   and more than 3.0 (hex) or 4.5 (base64) bits of entropy per character, unless its label
//!   names an identifier, a hash or a version (`trace_id`, `sha`, `ETag`, `commit`,
//!   `integrity`, `SRCREV`, ...; also a word just before the quote: `sha256 "..."`),
//!   describes a secret, says it is public or fake, or names a secret (the key rules decide
//!   then), or it is a public member of a JSON Web Key, a weak HTTP validator (`W/"..."`) or
//!   bare hex in an access log (ETags and request ids). UUIDs,
//!   runs of the alphabet and integrity hashes (`sha512-...`) are kept, and so is unquoted
//!   hex in prose (`commit 3f78...`).
//!
//! What is never redacted: placeholders (`xxxx`, `****`, `<...>`, `[...]`, `$VAR`, `${VAR}`,
//! `$(cmd)`, `{{ x }}`, `%VAR%`, empty values, `required`, `changeme`), documentation
//! examples (`...EXAMPLE`), the same user and password (`test:test`), references to a secret
//! (`os.environ["X"]`, `self.password`, `DB_PASSWORD`), paths, dates and versions, keys that
//! describe a secret (`token_url`, `secret_length`, `api_key_id`, `public_key`), one short
//! word after an unquoted key (`token: expired`), and values already redacted.
//!
//! [`SanitizerBuilder`] adds user patterns (they run on every string), key names whose
//! values are always redacted, an allowlist, and another replacement format.
//!
//! One Aho-Corasick pass over the literal keywords of every rule (plus three byte-level
//! structural scans for the rules without a literal, and, for a key keyword, a local check
//! that the key has its rule's shape around it: a separator after it, quotes and a comma, an
//! element's `<` and `>`, a flag's `-`) decides which regexes run: text where no gate opens
//! comes back borrowed, unchanged, after that pass (with no user pattern configured). Matches
//! become `[REDACTED:<kind>]`; the rest of the text is left byte for byte. Passes repeat
//! until the output is stable, at most 8 times (a bound for adversarial input; real text is
//! stable after the second), so sanitizing twice gives the same text as sanitizing once.
//!
//! The cost is linear in the text on any input. The rules search the text side by side, and
//! each pass may do at most 256 units of work per byte plus 2^20 (about one unit per byte a
//! search or a check goes over); past that bound the rest of the text becomes
//! `[REDACTED:unscanned]`, so it is neither scanned slowly nor shipped unscanned. Real text
//! stays far below it: a value longer than 1 KiB is redacted whole (under a key that names a
//! secret, or when a detector or context rule matched it) or searched inside (under any
//! other key) without being judged, the end of a long unquoted value is found once for all
//! the candidates nested in it, and an ODBC braced value (`PWD={...}`) is at most 256
//! characters long.

/// The default replacement format; `{kind}` is replaced by the kind of secret.
pub const DEFAULT_REPLACEMENT: &str = "[REDACTED:{kind}]";

/// How every marker of the default format starts: a value that starts so is kept, whatever
/// the replacement format (sanitizing stays idempotent).
const MARKER_PREFIX: &str = "[REDACTED";

mod builder;
mod check;
mod engine;
mod entropy;
mod gate;
mod json;
mod keys;
mod placeholder;
mod rules;
mod secret;
mod value;

pub use builder::{SanitizeConfigError, SanitizerBuilder};
pub use engine::Sanitizer;
pub(crate) use keys::names_secret;
pub use secret::Secret;
