//! Held-out probes of the sanitizer's precision and recall (issue 12, point 5): lines in
//! contexts that the development corpus does not have, with values drawn at run time from a
//! fixed seed (no provider-shaped secret is written in this file).
//!
//! - Negatives: HTTP validators (`ETag: W/"<hex>"`), digests (`sha256:<hex>`,
//!   `Content-MD5`, `Digest: sha-256=`), commit SHAs, image digests, request and trace ids,
//!   checksums in package manifests, and words that contain `pin` / `otp`. They must come
//!   back byte for byte.
//! - Positives: secrets on command lines (`tool config set <name> <value>`, `--password
//!   <value>`, `--token=<value>`, `export API_KEY=<value>`, `heroku config:set`, `kubectl
//!   create secret --from-literal`), and PINs and one-time codes. The value must be gone.
//!
//! Set 1 was written first and measured before any rule changed; the rules were then fixed
//! against it. Set 2 was written afterwards by a different generator, with other contexts
//! and value shapes, and measured once without tuning: it is the held-out figure. Set 3, a
//! third generator, was written after the set-2 fixes and measured once the same way. Each
//! set was then fixed where a rule (not a single string) could be; each test's comment
//! gives its figures before and after. Each test prints every miss and every changed
//! negative.
//!
//! | set | before | after |
//! |---|---|---|
//! | 1 (tuned against)        | 30/75 secrets, 78/90 negatives kept | 75/75, 90/90 |
//! | 2 (held out, after set 1) | 64/75, 90/90                        | 74/75, 90/90 |
//! | 3 (held out, after set 2) | 58/75, 84/90                        | 71/75, 90/90 |

use tracing_omninode::Sanitizer;

/// What every probe set's generator draws with; each set has its own stream (`next`), so the
/// sets stay independent, and shares these ways of turning it into text.
trait Draw {
    fn next(&mut self) -> u64;

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn from(&mut self, alphabet: &str, n: usize) -> String {
        let a = alphabet.as_bytes();
        (0..n).map(|_| a[self.below(a.len())] as char).collect()
    }

    fn hex(&mut self, n: usize) -> String {
        self.from("0123456789abcdef", n)
    }

    fn b64(&mut self, n: usize) -> String {
        self.from(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            n,
        )
    }

    fn digits(&mut self, n: usize) -> String {
        self.from("0123456789", n)
    }
}

/// A small deterministic generator (PCG-style LCG), so every run draws the same values.
struct Lcg(u64);

impl Draw for Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

impl Lcg {
    fn alnum(&mut self, n: usize) -> String {
        self.from(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            n,
        )
    }

    /// A human-chosen-looking password: letters, digits and a few symbols, 10 to 20 long,
    /// with at least one digit.
    fn password(&mut self) -> String {
        let n = 10 + self.below(11);
        let mut p = self.from(
            "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!@#%^*-_+.",
            n - 1,
        );
        p.insert(self.below(n), char::from(b'0' + self.below(10) as u8));
        // Not a leading symbol: `-p-x` is not how a password is passed.
        format!(
            "{}{p}",
            self.from("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", 1)
        )
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-{}{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            ["8", "9", "a", "b"][self.below(4)],
            self.hex(3),
            self.hex(12)
        )
    }
}

/// One probe: the line, and the secret it holds (`None`: a negative, to be kept whole).
type Probe = (String, Option<String>);

/// What the sanitizer did with a probe set.
#[derive(Default)]
struct Score {
    caught: usize,
    positives: usize,
    kept: usize,
    negatives: usize,
    report: Vec<String>,
}

fn score(probes: &[Probe]) -> Score {
    let s = Sanitizer::default();
    let mut sc = Score::default();
    for (line, secret) in probes {
        let out = s.sanitize_str(line);
        match secret {
            Some(secret) => {
                sc.positives += 1;
                if out.contains(secret.as_str()) {
                    sc.report.push(format!("MISS {line}\n   -> {out}"));
                } else {
                    sc.caught += 1;
                }
            }
            None => {
                sc.negatives += 1;
                if out == line.as_str() {
                    sc.kept += 1;
                } else {
                    sc.report.push(format!("OVER {line}\n   -> {out}"));
                }
            }
        }
    }
    sc
}

/// Prints the score and checks it: at least `recall` % of the secrets redacted, at most 2 %
/// of the negatives changed.
fn check(name: &str, probes: &[Probe], recall: usize) {
    let sc = score(probes);
    println!(
        "{name}: secrets redacted {}/{}; negatives unchanged {}/{}",
        sc.caught, sc.positives, sc.kept, sc.negatives
    );
    for r in &sc.report {
        println!("{r}");
    }
    assert!(sc.positives >= 60 && sc.negatives >= 60);
    assert!(
        sc.caught * 100 >= sc.positives * recall,
        "{name}: recall {}/{}",
        sc.caught,
        sc.positives
    );
    assert!(
        (sc.negatives - sc.kept) * 100 <= sc.negatives * 2,
        "{name}: precision {}/{}",
        sc.kept,
        sc.negatives
    );
}

/// Set 1 (the probes the rules were fixed against).
fn set_one() -> Vec<Probe> {
    let mut g = Lcg(0x0012_5e75_0001);
    let mut probes: Vec<Probe> = Vec::new();
    for round in 0..3 {
        let ip = format!("10.{}.{}.{}", g.below(255), g.below(255), g.below(255));
        let ts = format!(
            "04/Dec/2026:1{}:{:02}:{:02} +0000",
            round,
            g.below(60),
            g.below(60)
        );
        // Negatives: HTTP validators.
        let neg = [
            format!(
                r#"{ip} - - [{ts}] "GET /static/app.{}.js HTTP/1.1" 304 0 "-" "Mozilla/5.0" W/"{}""#,
                g.hex(8),
                g.hex(32)
            ),
            format!(
                r#"{ip} - - [{ts}] "GET /img/logo.png HTTP/2.0" 200 5123 etag="{}" rt=0.004"#,
                g.hex(40)
            ),
            format!(
                "< HTTP/1.1 200 OK\n< ETag: W/\"{}-{}\"\n< Content-Length: 5123",
                g.hex(4),
                g.hex(27)
            ),
            format!(
                r#"level=debug msg="cache revalidated" if_none_match="\"{}\"" status=304"#,
                g.hex(32)
            ),
            format!(
                r#"{{"method":"PUT","path":"/v1/objects/a","response":{{"ETag":"{}"}}}}"#,
                g.hex(32)
            ),
            // Digests and content hashes.
            format!("Content-MD5: {}==", g.b64(22)),
            format!("Digest: sha-256={}=", g.b64(43)),
            format!(
                r#"{{"name":"report.pdf","md5Hash":"{}==","crc32c":"{}=="}}"#,
                g.b64(22),
                g.b64(6)
            ),
            format!("x-amz-content-sha256: {}", g.hex(64)),
            format!(
                r#"upload done object="reports/q3.csv" sha256="{}""#,
                g.hex(64)
            ),
            // Commit SHAs.
            format!("HEAD is now at {} Fix flaky retry test", g.hex(7)),
            format!(r#"deploy started service=orders rev="{}" by=ci"#, g.hex(40)),
            format!(
                r#"{{"event":"push","after":"{}","before":"{}"}}"#,
                g.hex(40),
                g.hex(40)
            ),
            format!(
                "Merge pull request #{} from team/feature ({})",
                g.below(9000),
                g.hex(40)
            ),
            // Image digests.
            format!("Pulled registry.internal/orders@sha256:{}", g.hex(64)),
            format!(
                r#"{{"image":"ghcr.io/acme/api","digest":"sha256:{}"}}"#,
                g.hex(64)
            ),
            format!(r#""RepoDigests": ["nginx@sha256:{}"]"#, g.hex(64)),
            // Request and trace ids.
            format!("X-Request-Id: {}", g.hex(32)),
            format!("x-amzn-trace-id: Root=1-{}-{}", g.hex(8), g.hex(24)),
            format!(r#"{{"traceparent":"00-{}-{}-01"}}"#, g.hex(32), g.hex(16)),
            format!(r#"span closed req="{}" elapsed=12ms"#, g.hex(32)),
            // Checksums in package manifests.
            format!(
                "[[package]]\nname = \"serde\"\nversion = \"1.0.{}\"\nchecksum = \"{}\"",
                g.below(200),
                g.hex(64)
            ),
            format!("github.com/acme/lib v1.{}.0 h1:{}=", g.below(9), g.b64(43)),
            format!("  sha256 \"{}\"", g.hex(64)),
            format!("requests==2.31.0 --hash=sha256:{}", g.hex(64)),
            // Words containing `pin` / `otp`, and other non-secrets on command lines.
            format!("spinner: dots interval={}", g.below(200)),
            format!("pinned: true pinned_version={}", g.digits(4)),
            format!("shipping: {} topic: orders.{}", g.digits(4), g.below(12)),
            format!(
                "pinecone_index=prod-{} opinion_score={}",
                g.below(9),
                g.digits(3)
            ),
            format!("mytool config set log_level debug --port {}", g.digits(4)),
        ];
        probes.extend(neg.into_iter().map(|l| (l, None)));
        // Positives: secrets on command lines, PINs and one-time codes.
        let pos: Vec<(String, String)> = vec![
            {
                let v = g.alnum(32);
                (format!("$ mytool config set api_key {v}"), v)
            },
            {
                let v = g.password();
                (format!("acme-cli config set db.password {v}"), v)
            },
            {
                let v = g.password();
                (format!("deploy.sh --password {v} --host db-{round}"), v)
            },
            {
                let v = g.alnum(40);
                (format!("+ ./sync --token={v} --verbose"), v)
            },
            {
                let v = g.password();
                (format!("mysql -h db -u app -p{v} orders"), v)
            },
            {
                let v = g.alnum(36);
                (format!("export GITHUB_TOKEN={v}"), v)
            },
            {
                let v = g.b64(40);
                (format!("export API_KEY \"{v}\""), v)
            },
            {
                let v = g.hex(50);
                (
                    format!("heroku config:set SECRET_KEY {v} -a shop-{round}"),
                    v,
                )
            },
            {
                let v = g.password();
                (
                    format!("kubectl create secret generic db-creds --from-literal=password={v}"),
                    v,
                )
            },
            {
                let v = g.alnum(24);
                (format!("set token {v}"), v)
            },
            {
                let v = g.digits(4);
                (format!("pin {v}"), v)
            },
            {
                let v = g.digits(6);
                (format!("otp: {v}"), v)
            },
            {
                let v = g.digits(4);
                (format!("pin = {v}"), v)
            },
            {
                let v = g.digits(4);
                (format!(r#"{{"user":"u{round}","pin": {v}}}"#), v)
            },
            {
                let v = g.digits(6);
                (format!("verify user_pin={v} ok=false"), v)
            },
            {
                let v = g.digits(5);
                (format!("pinCode: {v}"), v)
            },
            {
                let v = g.digits(6);
                (format!("otp_code={v} channel=sms"), v)
            },
            {
                let v = g.uuid();
                (
                    format!("npm config set //registry.npmjs.org/:_authToken {v}"),
                    v,
                )
            },
            {
                let v = g.b64(40);
                (format!("aws configure set aws_secret_access_key {v}"), v)
            },
            {
                let v = g.password();
                (format!("docker run -e DB_PASSWORD={v} postgres:16"), v)
            },
            {
                let v = g.alnum(32);
                (format!("vault kv put secret/app api_key={v}"), v)
            },
            {
                let v = g.password();
                (
                    format!("keytool -importkeystore -storepass {v} -keystore app.jks"),
                    v,
                )
            },
            {
                let v = g.alnum(30);
                (format!("yarn config set npmAuthToken {v}"), v)
            },
            {
                let v = g.alnum(28);
                (format!("--client-secret={v}"), v)
            },
            {
                let v = g.password();
                (format!("setenv DB_PASS {v}"), v)
            },
        ];
        probes.extend(pos.into_iter().map(|(l, v)| (l, Some(v))));
    }
    probes
}

/// Before the fixes: 30/75 secrets redacted, 78/90 negatives unchanged; after: 75/75, 90/90.
#[test]
fn probe_set_one() {
    check("set 1", &set_one(), 98);
}

/// Set 2's generator (xorshift64*, another seed): a different stream from set 1's.
struct Xs(u64);

impl Draw for Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Xs {
    fn upper_hex(&mut self, n: usize) -> String {
        self.from("0123456789ABCDEF", n)
    }

    /// A credential: base62, url-safe base64, hex or a symbol-bearing password, 12 to 48
    /// long, starting with a letter and holding a digit.
    fn credential(&mut self) -> String {
        let n = 12 + self.below(37);
        let body = match self.below(4) {
            0 => self.from(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                n,
            ),
            1 => self.from(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                n,
            ),
            2 => self.hex(n),
            _ => self.from(
                "abcdefghkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!?~@%^",
                n,
            ),
        };
        format!(
            "{}{}{body}",
            self.from("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ", 1),
            self.digits(1)
        )
    }

    fn one<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Set 2, the held-out figure: written after the rules were fixed against set 1, and
/// measured once without tuning.
fn set_two() -> Vec<Probe> {
    let mut g = Xs(0x9e37_79b9_7f4a_7c15);
    let mut probes: Vec<Probe> = Vec::new();
    let env_keys = [
        "API_KEY",
        "ACCESS_TOKEN",
        "DB_PASSWORD",
        "CLIENT_SECRET",
        "STRIPE_KEY",
        "AUTH_TOKEN",
        "SLACK_BOT_TOKEN",
        "SENTRY_AUTH_TOKEN",
        "NPM_TOKEN",
        "REDIS_PASSWORD",
    ];
    for round in 0..3 {
        let neg = [
            // HTTP validators in other log shapes.
            format!(
                r#"127.0.0.1 - frank [10/Oct/2026:13:5{round}:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://intranet/start.html" "Mozilla/4.08" "{}""#,
                g.hex(32)
            ),
            format!(
                r#"{{"Key":"exports/{}.csv","ETag":"\"{}\"","Size":{}}}"#,
                g.hex(6),
                g.hex(32),
                g.below(99999)
            ),
            format!("> If-Match: \"{}\"", g.hex(40)),
            format!(
                "cache store url=/api/items etag \"{}\" max_age=60",
                g.hex(32)
            ),
            format!(
                r#"{{"contentMd5":"{}==","size":{}}}"#,
                g.b64(22),
                g.below(100000)
            ),
            format!("x-goog-hash: crc32c={}==, md5={}==", g.b64(6), g.b64(22)),
            format!("Repr-Digest: sha-256=:{}=:", g.b64(43)),
            // Image digests.
            format!(
                "latest: digest: sha256:{} size: {}",
                g.hex(64),
                1000 + g.below(9000)
            ),
            format!(
                "nginx   1.27   sha256:{}   {}   2 weeks ago   187MB",
                g.hex(64),
                g.hex(12)
            ),
            format!(
                r#"    imageID: "docker-pullable://redis@sha256:{}""#,
                g.hex(64)
            ),
            // Commits.
            format!("{} (HEAD -> main, origin/main) Bump deps", g.hex(7)),
            format!(r#"{{"commit_id": "{}", "status": "success"}}"#, g.hex(40)),
            format!("CI_COMMIT_SHA={} CI_PIPELINE_ID={}", g.hex(40), g.digits(6)),
            format!(
                r#"{{"merge_commit_sha":"{}","parent_ids":["{}"]}}"#,
                g.hex(40),
                g.hex(40)
            ),
            format!("rev = '{}'", g.hex(40)),
            // Request and trace ids.
            format!("X-Correlation-ID: {}", g.hex(32)),
            format!(
                r#"{{"level":"info","requestId":"{}","status":204}}"#,
                g.hex(32)
            ),
            format!("b3: {}-{}-1", g.hex(32), g.hex(16)),
            format!(r#"{{"reqid": "{}", "route": "/health"}}"#, g.hex(32)),
            format!(
                "x-amz-request-id: {} x-amz-id-2: {}=",
                g.upper_hex(16),
                g.b64(75)
            ),
            // Package manifests.
            format!(r#"    "integrity": "sha512-{}==","#, g.b64(86)),
            format!(
                r#"{{file = "pkg-1.{round}.0-py3-none-any.whl", hash = "sha256:{}"}}"#,
                g.hex(64)
            ),
            format!(r#"            "hashes": ["sha256:{}"],"#, g.hex(64)),
            format!("{}  app-1.{round}.3-linux-amd64.tar.gz", g.hex(64)),
            format!(r#"  "checksum": "md5:{}","#, g.hex(32)),
            // `pin` / `otp` inside words and keys that describe the code.
            format!("mapping: {} typing_ms: {}", g.digits(4), g.digits(4)),
            format!(
                "laptop_serial={} pipeline=build-{}",
                g.digits(6),
                g.digits(4)
            ),
            format!(
                "otp_attempts_left: {} pin_length: 6 otp_sent=true",
                g.below(3)
            ),
            // Command lines without a secret.
            format!("kubectl create secret generic tls-{round} --from-file=tls.key=./tls.key"),
            g.one(&[
                "docker login --password-stdin -u ci registry.local",
                "npm config set registry https://registry.npmjs.org/",
                "git config --global credential.helper store",
                "aws configure set region eu-west-1",
                "mysql -u root -p",
            ])
            .to_owned(),
        ];
        probes.extend(neg.into_iter().map(|l| (l, None)));
        let mut pos: Vec<(String, String)> = Vec::new();
        let mut add = |line: String, v: String| pos.push((line, v));
        let k = g.one(&env_keys);
        let v = g.credential();
        add(format!(r#"PS> $env:{k} = "{v}""#), v);
        let k = g.one(&env_keys);
        let v = g.credential();
        add(format!("ENV {k} {v}"), v);
        let k = g.one(&env_keys);
        let v = g.credential();
        add(format!("ARG {k}={v}"), v);
        let k = g.one(&env_keys);
        let v = g.credential();
        add(format!("wp config set {k} {v} --type=constant"), v);
        let v = g.credential();
        add(format!("redis-cli CONFIG SET requirepass {v}"), v);
        let v = g.credential();
        add(
            format!("mongo --host db --username admin --password {v}"),
            v,
        );
        let v = g.credential();
        add(
            format!("java -Djavax.net.ssl.keyStorePassword={v} -jar app.jar"),
            v,
        );
        let v = g.credential();
        add(format!("helm upgrade app ./chart --set db.password={v}"), v);
        let v = g.credential();
        add(format!(r#"terraform apply -var "db_password={v}""#), v);
        let v = g.credential();
        add(
            format!(r#"ansible-playbook site.yml -e "vault_token={v}""#),
            v,
        );
        let v = g.credential();
        add(
            format!("openssl pkcs12 -export -in c.pem -passout pass:{v}"),
            v,
        );
        let v = g.credential();
        add(format!("mysqladmin -uroot -p{v} status"), v);
        let v = g.credential();
        add(format!("docker login -u ci -p {v} registry.local"), v);
        let v = g.credential();
        add(
            format!("az keyvault secret set --vault-name kv --name db-pass --value {v}"),
            v,
        );
        let v = g.credential();
        add(
            format!(r#"dotnet user-secrets set "Smtp:Password" "{v}""#),
            v,
        );
        let v = g.credential();
        add(format!("gh secret set DEPLOY_TOKEN --body {v}"), v);
        let v = g.credential();
        add(
            format!("+ curl -sS -X POST --api-key {v} https://hooks.internal/x"),
            v,
        );
        let k = g.one(&env_keys);
        let v = g.credential();
        add(format!("set -Ux {k} {v}"), v);
        let v = g.digits(6);
        add(format!("Your verification otp is {v}"), v);
        let v = g.digits(4);
        add(format!("PIN: {v}"), v);
        let v = g.digits(6);
        add(format!(r#"{{"otp":"{v}","ttl":300}}"#), v);
        let v = g.digits(4);
        add(format!("pin_code={v} card=visa"), v);
        let v = g.digits(4);
        add(format!("userPin: {v}"), v);
        let v = g.digits(6);
        add(format!("OTP={v}"), v);
        let v = g.digits(6);
        add(format!(r#"{{"totpCode": {v}}}"#), v);
        probes.extend(pos.into_iter().map(|(l, v)| (l, Some(v))));
    }
    probes
}

/// Held out, measured once before any change for it: 64/75 secrets redacted, 90/90
/// negatives unchanged. After fixing the shapes it found (`login -u x -p v`, a secret
/// store's `--value` / `--body`, a quoted name after `set`): 74/75, 90/90 (`STRIPE_KEY`,
/// a key named only by a provider and `key`, stays a miss).
#[test]
fn probe_set_two() {
    check("set 2", &set_two(), 98);
}

/// Set 3's generator (splitmix64, a third seed).
struct Sm(u64);

impl Draw for Sm {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Sm {
    /// A secret value: one of four alphabets, 14 to 44 long, a letter and a digit first.
    fn value(&mut self) -> String {
        let n = 14 + self.below(31);
        let alphabet = [
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            "abcdefghijklmnopqrstuvwxyz0123456789",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-",
            "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789#%+=!",
        ][self.below(4)];
        let body = self.from(alphabet, n);
        format!(
            "{}{}{body}",
            self.from("ABCDEFGHJKMNPQRSTUVWXYZ", 1),
            self.below(10)
        )
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-a{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.hex(3),
            self.hex(12)
        )
    }
}

/// Set 3: a second held-out set, written after the set-2 fixes and measured once.
fn set_three() -> Vec<Probe> {
    let mut g = Sm(0x5a17_3e00_0003);
    let mut probes: Vec<Probe> = Vec::new();
    for round in 0..3 {
        let neg = [
            format!(
                r#"{{"status":304,"headers":{{"etag":"W/\"{}\""}}}}"#,
                g.hex(32)
            ),
            format!(
                r#"[2026-12-04T10:0{round}:00.000Z] "GET /api/v2/items HTTP/1.1" 200 - 0 512 3 2 "-" "grpc-go/1.6" "{}" "api.local" "10.0.0.{}:8080""#,
                g.uuid(),
                g.below(255)
            ),
            format!(
                r#"haproxy[{}]: 10.0.0.1:5123 [04/Dec/2026:10:00:00.123] fe be/srv1 0/0/1/2/3 200 512 - - ---- 1/1/0/0/0 0/0 {{{}}} "GET / HTTP/1.1""#,
                g.below(9999),
                g.hex(32)
            ),
            format!("> Content-MD5: {}==", g.b64(22)),
            format!(
                "tree {}\nparent {}\nauthor bob <b@x> 1733300000 +0000",
                g.hex(40),
                g.hex(40)
            ),
            format!("Updating {}..{}\nFast-forward", g.hex(7), g.hex(7)),
            format!(r#"    "Image": "sha256:{}","#, g.hex(64)),
            format!(
                "msg=\"image pulled\" ref=sha256:{} size={}",
                g.hex(64),
                g.below(99999)
            ),
            format!("FROM node:20@sha256:{}", g.hex(64)),
            format!(
                r#"source = "git+https://git.local/x/y?rev={}#{}""#,
                g.hex(40),
                g.hex(40)
            ),
            format!("require git.local/lib v0.0.0-20261204100000-{}", g.hex(12)),
            format!(r#"            "reference": "{}","#, g.hex(40)),
            format!("  digest: sha256:{}", g.hex(64)),
            format!(r#"    "zh:{}","#, g.hex(64)),
            format!(r#"{{"installation_id":"{}","os":"linux"}}"#, g.hex(32)),
            format!(
                r#"{{"device_id": "{}", "event_id":"{}"}}"#,
                g.hex(16),
                g.hex(32)
            ),
            format!(
                r#"{{"idempotency_key": "{}", "amount": {}}}"#,
                g.hex(32),
                g.below(9999)
            ),
            format!(r#"{{"nonce":"{}","cursor":"{}"}}"#, g.hex(32), g.b64(28)),
            format!(
                "spinlock_ns: {} dropped_pings: {}",
                g.digits(4),
                g.digits(4)
            ),
            format!("footprint_kb={} capping: {}", g.digits(5), g.digits(4)),
            format!(
                r#"{{"pinned_by": "bob", "otp_verified": true, "pinata": {}}}"#,
                g.digits(4)
            ),
            "set -euo pipefail".to_owned(),
            format!("pip config set global.timeout {}", 10 + g.below(90)),
            format!("heroku config:set WEB_CONCURRENCY={}", 1 + g.below(8)),
            "kubectl create secret generic app --from-env-file=.env".to_owned(),
            "export TOKEN_ENDPOINT=https://auth.local/oauth/token".to_owned(),
            "setenv LD_LIBRARY_PATH /opt/lib".to_owned(),
            "gcloud auth activate-service-account --key-file=./sa.json".to_owned(),
            format!("git config --global user.email dev{round}@corp.local"),
            format!("Checksum verified: sha1 {}", g.hex(40)),
        ];
        probes.extend(neg.into_iter().map(|l| (l, None)));
        let mut pos: Vec<(String, String)> = Vec::new();
        let mut add = |line: String, v: String| pos.push((line, v));
        let v = g.value();
        add(
            format!("pip config set global.index-url https://__token__:{v}@pypi.local/simple"),
            v,
        );
        let v = g.value();
        add(format!("poetry config pypi-token.pypi {v}"), v);
        let v = g.value();
        add(format!("poetry config http-basic.private deploy {v}"), v);
        let v = g.value();
        add(format!("cargo login {v}"), v);
        let v = g.value();
        add(format!("npm set //npm.pkg.github.com/:_authToken={v}"), v);
        let v = g.value();
        add(
            format!(r#"git config --global http.extraheader "AUTHORIZATION: bearer {v}""#),
            v,
        );
        let v = g.uuid();
        add(format!("snyk config set api={v}"), v);
        let v = g.value();
        add(format!("fly secrets set DATABASE_PASSWORD={v} -a shop"), v);
        let v = g.value();
        add(format!("doppler secrets set STRIPE_SECRET {v}"), v);
        let v = g.value();
        add(format!("consul kv put app/db_password {v}"), v);
        let v = g.value();
        add(format!("etcdctl put /app/api_token {v}"), v);
        let v = g.value();
        add(format!("redis-cli SET session_token {v}"), v);
        let v = g.value();
        add(
            format!(r#"psql -c "ALTER USER app WITH PASSWORD '{v}'""#),
            v,
        );
        let v = g.value();
        add(
            format!(r#"mysql -e "CREATE USER 'a'@'%' IDENTIFIED BY '{v}'""#),
            v,
        );
        let v = g.value();
        add(format!("curl --oauth2-bearer {v} https://api.local/me"), v);
        let v = g.value();
        add(
            format!("wget --http-user=bob --http-password={v} https://files.local/a"),
            v,
        );
        let v = g.value();
        add(format!("export ANTHROPIC_API_KEY='{v}'"), v);
        let v = g.value();
        add(
            format!("[System.Environment]::SetEnvironmentVariable('API_TOKEN', '{v}')"),
            v,
        );
        let v = g.digits(4);
        add(format!("card pin: {v}"), v);
        let v = g.digits(4);
        add(format!(r#"{{"atmPin":"{v}"}}"#), v);
        let v = g.digits(6);
        add(format!("sms otp {v} delivered"), v);
        let v = g.digits(4);
        add(format!("enter PIN {v} at the terminal"), v);
        let v = g.digits(6);
        add(format!(r#"{{"otpCode": "{v}"}}"#), v);
        let v = g.digits(6);
        add(format!("auth verify --otp {v}"), v);
        let v = g.digits(6);
        add(format!("mfa_otp={v} user=bob"), v);
        probes.extend(pos.into_iter().map(|(l, v)| (l, Some(v))));
    }
    probes
}

/// Held out, measured once before any change for it: 58/75 secrets redacted, 84/90
/// negatives unchanged. After fixing the general shapes it found (SQL `IDENTIFIED BY`,
/// `put path/KEY value`, `login <token>`, `http-basic.<repo> <user> <password>`, and the
/// labels `reference`, `idempotency_key`): 71/75, 90/90. It stays below 98 %: `snyk config
/// set api=<uuid>` (a key named only `api`) and a `cargo login` token with `#`, `%` and `!`
/// in it (not the alphabet of a token) are kept; the threshold guards what was reached.
#[test]
fn probe_set_three() {
    check("set 3", &set_three(), 94);
}
