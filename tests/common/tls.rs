//! A real `tansu` broker behind TLS, for `tests/secured_cluster.rs` (included there with
//! `#[path]`, so the other test binaries do not compile it).
//!
//! tansu 0.6 refuses `--cert` together with `--key`, so the broker listens in plaintext on
//! `127.0.0.1:<plain>` and advertises `localhost:<tls>`, where [`Terminator`] (rustls on a
//! small tokio runtime) accepts TLS and forwards each connection to the plaintext port. Every
//! client — the pipeline, the admin client, the consumers — therefore bootstraps from and is
//! redirected to the TLS port only. [`Ca`] makes certificate authorities and server
//! certificates (`localhost`, `127.0.0.1`) with rcgen; the terminator's certificate can be
//! swapped while it runs (a certificate rotated on a live cluster).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tracing_omninode::ops::{create_catalog_topics, ClientOptions};

/// The `tansu` binary: on `PATH`, else where `cargo install` puts it. `None` when it is not
/// installed (`scripts/test` installs it).
pub fn tansu() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin").join("tansu"));
    on_path.chain(cargo_home).find(|f| f.is_file())
}

/// A certificate authority: its key and its certificate, written as PEM to `pem_path` (what
/// librdkafka's `ssl.ca.location` takes).
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem_path: PathBuf,
}

/// How a server certificate is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Valid now, for `localhost` and `127.0.0.1`.
    Valid,
    /// For `localhost` and `127.0.0.1`, but its validity ended in 2021.
    Expired,
    /// Valid now, but for `broker.invalid` only: not for the name the clients dial.
    OtherHost,
}

/// A server certificate chain and its key, for the terminator.
pub struct ServerCert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Ca {
    /// A new CA named `name`, its certificate written to `dir/<name>.pem`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem_path = dir.join(format!("{name}.pem"));
        std::fs::write(&pem_path, cert.pem()).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            pem_path,
        }
    }

    /// A server certificate for `localhost` (DNS) and `127.0.0.1` (IP) signed by this CA
    /// (for `broker.invalid` with [`Validity::OtherHost`]).
    pub fn server_cert(&self, validity: Validity) -> ServerCert {
        let names = match validity {
            Validity::OtherHost => vec!["broker.invalid".to_owned()],
            _ => vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
        };
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if validity == Validity::Expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerCert {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

fn server_config(cert: &ServerCert) -> Arc<ServerConfig> {
    // rustls's crypto provider is ring, the only one the dev-dependency enables.
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .unwrap();
    Arc::new(config)
}

/// What the terminator saw.
#[derive(Default)]
struct Seen {
    handshakes_ok: AtomicU64,
    /// Why each failed handshake failed, as rustls said it (the client's alert).
    failures: Mutex<Vec<String>>,
}

/// A TLS terminator on `127.0.0.1:<port>` (and `[::1]:<port>` when it can bind it) that
/// forwards every accepted TLS connection to `127.0.0.1:<upstream>` in plaintext.
pub struct Terminator {
    port: u16,
    config: Arc<RwLock<Arc<ServerConfig>>>,
    seen: Arc<Seen>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Terminator {
    /// Listens on a free port, presenting `cert`.
    pub fn start(cert: &ServerCert, upstream: u16) -> Terminator {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tls-terminator")
            .enable_all()
            .build()
            .unwrap();
        let config = Arc::new(RwLock::new(server_config(cert)));
        let seen = Arc::new(Seen::default());
        let (v4, v6) = runtime.block_on(async {
            let v4 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = v4.local_addr().unwrap().port();
            // Where `localhost` resolves to ::1 first; best effort.
            let v6 = tokio::net::TcpListener::bind(("::1", port)).await.ok();
            (v4, v6)
        });
        let port = v4.local_addr().unwrap().port();
        for listener in std::iter::once(v4).chain(v6) {
            runtime.spawn(accept_loop(
                listener,
                config.clone(),
                seen.clone(),
                upstream,
            ));
        }
        Terminator {
            port,
            config,
            seen,
            runtime: Some(runtime),
        }
    }

    /// The TLS port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Presents `cert` from the next connection on (connections already open keep theirs).
    pub fn set_certificate(&self, cert: &ServerCert) {
        *self.config.write().unwrap() = server_config(cert);
    }

    /// Handshakes that succeeded so far.
    pub fn handshakes_ok(&self) -> u64 {
        self.seen.handshakes_ok.load(Ordering::SeqCst)
    }

    /// Why the handshakes that failed so far failed.
    pub fn failures(&self) -> Vec<String> {
        self.seen.failures.lock().unwrap().clone()
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    config: Arc<RwLock<Arc<ServerConfig>>>,
    seen: Arc<Seen>,
    upstream: u16,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = TlsAcceptor::from(config.read().unwrap().clone());
        let seen = seen.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let mut tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    let mut failures = seen.failures.lock().unwrap();
                    if failures.len() < 1_000 {
                        failures.push(e.to_string());
                    }
                    return;
                }
            };
            seen.handshakes_ok.fetch_add(1, Ordering::SeqCst);
            let addr = SocketAddr::from(([127, 0, 0, 1], upstream));
            if let Ok(mut plain) = tokio::net::TcpStream::connect(addr).await {
                let _ = plain.set_nodelay(true);
                let _ = copy_both_ways(&mut tls, &mut plain).await;
            }
        });
    }
}

/// One direction of [`copy_both_ways`]: a buffer and how far it was written on.
struct Pump {
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    eof: bool,
    finished: bool,
}

impl Pump {
    fn new() -> Pump {
        Pump {
            buf: vec![0; 16 * 1024].into_boxed_slice(),
            pos: 0,
            end: 0,
            eof: false,
            finished: false,
        }
    }

    /// Moves bytes from `from` to `to` until `from` would block, or ends and `to` is shut
    /// down (then `finished`).
    fn poll<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
        to: &mut W,
    ) -> Poll<io::Result<()>> {
        while !self.finished {
            if self.pos == self.end && !self.eof {
                let mut read = ReadBuf::new(&mut self.buf);
                ready!(Pin::new(&mut *from).poll_read(cx, &mut read))?;
                let n = read.filled().len();
                self.pos = 0;
                self.end = n;
                self.eof = n == 0;
            }
            while self.pos < self.end {
                let n = ready!(Pin::new(&mut *to).poll_write(cx, &self.buf[self.pos..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
            }
            if self.eof {
                ready!(Pin::new(&mut *to).poll_shutdown(cx))?;
                self.finished = true;
            } else {
                ready!(Pin::new(&mut *to).poll_flush(cx))?;
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Copies `a` to `b` and `b` to `a` until both ends closed (tokio's `copy_bidirectional`,
/// which needs tokio's `io-util` feature).
async fn copy_both_ways<A, B>(a: &mut A, b: &mut B) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_to_b, mut b_to_a) = (Pump::new(), Pump::new());
    std::future::poll_fn(|cx| {
        let forth = a_to_b.poll(cx, a, b)?;
        let back = b_to_a.poll(cx, b, a)?;
        if forth.is_ready() && back.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// A `tansu` process with in-memory storage; killed on drop.
pub struct Tansu {
    child: Child,
    log: PathBuf,
}

impl Tansu {
    /// Starts `bin` listening in plaintext on `127.0.0.1:<plain_port>` and advertising
    /// `advertised` (`host:port`); returns once the port accepts connections.
    pub fn start(bin: &Path, plain_port: u16, advertised: &str, dir: &Path) -> Tansu {
        let log = dir.join("tansu.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg("broker")
            .args(["--listener-url", &format!("tcp://127.0.0.1:{plain_port}")])
            .args(["--advertised-listener-url", &format!("tcp://{advertised}")])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("tansu starts");
        let mut broker = Tansu { child, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = broker.child.try_wait().unwrap() {
                panic!("tansu exited early ({status}): {}", broker.log_text());
            }
            if std::net::TcpStream::connect(("127.0.0.1", plain_port)).is_ok() {
                return broker;
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {plain_port} within 30 s: {}",
                broker.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the broker printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (free when this returns; the broker binds it next).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A broker reachable only over TLS: tansu behind a [`Terminator`] presenting a valid
/// certificate of [`SecuredCluster::ca`] until told otherwise.
pub struct SecuredCluster {
    pub ca: Ca,
    pub tls: Terminator,
    pub broker: Tansu,
    pub dir: tempfile::TempDir,
}

impl SecuredCluster {
    /// Starts one, or says why the test is skipped and returns `None` when `tansu` is not
    /// installed (outside CI; under CI that is a failure, as for the shared broker).
    pub fn start_or_skip(test: &str) -> Option<SecuredCluster> {
        let Some(bin) = tansu() else {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: tansu is not installed: run the suite through scripts/test");
            }
            eprintln!(
                "SKIPPED {test}: the `tansu` broker is not on PATH \
                 (cargo install tansu --locked --features dynostore, or run scripts/test)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "right");
        let plain = free_port();
        let tls = Terminator::start(&ca.server_cert(Validity::Valid), plain);
        let broker = Tansu::start(
            &bin,
            plain,
            &format!("localhost:{}", tls.port()),
            dir.path(),
        );
        Some(SecuredCluster {
            ca,
            tls,
            broker,
            dir,
        })
    }

    /// `localhost:<tls port>`: the name the server certificate is checked against.
    pub fn bootstrap(&self) -> String {
        format!("localhost:{}", self.tls.port())
    }

    /// The librdkafka properties of a TLS client trusting the CA in `ca_pem`. Hostname
    /// verification is librdkafka's default (`ssl.endpoint.identification.algorithm=https`)
    /// and deliberately not set here.
    pub fn tls_props(ca_pem: &Path) -> Vec<(String, String)> {
        vec![
            ("security.protocol".to_owned(), "SSL".to_owned()),
            (
                "ssl.ca.location".to_owned(),
                ca_pem.to_str().unwrap().to_owned(),
            ),
        ]
    }

    /// The properties of a client trusting this cluster's CA.
    pub fn trusted_props(&self) -> Vec<(String, String)> {
        Self::tls_props(&self.ca.pem_path)
    }

    /// Creates the 38 catalog topics under `prefix` over TLS, through the library's own
    /// admin path (`ops::create_catalog_topics`, which takes the TLS properties).
    pub fn provision(&self, prefix: &str) {
        let mut opts = self
            .trusted_props()
            .into_iter()
            .fold(ClientOptions::new(self.bootstrap()), |o, (k, v)| {
                o.property(k, v)
            });
        opts.timeout = Duration::from_secs(60);
        let report = create_catalog_topics(&opts, prefix, 1, 1).unwrap_or_else(|e| {
            panic!(
                "creating topics over TLS: {e}; broker log: {}",
                self.broker.log_text()
            )
        });
        assert_eq!(report.created.len() + report.existing.len(), 38);
    }

    fn consumer(&self) -> BaseConsumer {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("group.id", format!("test-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false");
        for (k, v) in self.trusted_props() {
            c.set(k, v);
        }
        c.create().expect("TLS consumer")
    }

    /// The values of every record on partition 0 of `topic`, read over TLS from the
    /// beginning until none came for `idle` (at most 60 s in all).
    ///
    /// Read by content, not counted by the high watermark: tansu 0.6's in-memory storage
    /// answers `ListOffsets(latest)` with the base offset of the last batch plus one, so
    /// 30 records produced in one batch show a high watermark of 1.
    pub fn consume(&self, topic: &str, idle: Duration) -> Vec<Value> {
        let consumer = self.consumer();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = Instant::now();
        while last.elapsed() < idle && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    out.push(
                        serde_json::from_slice(m.payload().unwrap_or_default())
                            .unwrap_or(Value::Null),
                    );
                    last = Instant::now();
                }
                Some(Err(e)) => eprintln!("consuming {topic} over TLS: {e}"),
                None => {}
            }
        }
        out
    }
}
