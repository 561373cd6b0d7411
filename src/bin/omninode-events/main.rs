//! `omninode-events`: the operator's tool for OmniNode topics. One subcommand per job
//! (`tail`, `validate`, `dlq stats|monitor|replay`, `topics create|list`, `sanitize`), each
//! a thin shell over `tracing_omninode::ops`. `--help` on any of them says more.

mod args;
mod dlq;
mod validate;

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_omninode::ops::{self, format, tail, ClientOptions, OpsError};

use args::{Global, TailArgs};

/// What the exit codes mean; shown by `--help` of every subcommand.
const EXIT_CODES: &str = "Exit codes: 0 ok; 1 problems found (validate found problems, replay refused records); 2 usage or connection error (the message says what to fix).";

#[derive(Debug, Parser)]
#[command(
    name = "omninode-events",
    version,
    about = "Tail, validate, watch and replay OmniNode event topics and their dead-letter queues.",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the events of OmniNode topics (and `.dlq` topics); never commits offsets.
    #[command(after_help = EXIT_CODES)]
    Tail(TailArgs),
    /// Check envelopes against the shipped schemas and the rules schemas cannot express:
    /// key = catalog partition key, headers = envelope, x-schema-hash = shipped file,
    /// sequence gaps per producing instance. One line per problem, then a summary.
    #[command(after_help = EXIT_CODES)]
    Validate(validate::ValidateArgs),
    /// Count, watch and replay the dead-letter topics.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Create or list the catalog topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Copy stdin to stdout with every secret replaced by `[REDACTED:<kind>]`.
    #[command(after_help = EXIT_CODES)]
    Sanitize,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create the 19 catalog topics and their `.dlq` twins (an existing topic is fine).
    #[command(after_help = EXIT_CODES)]
    Create {
        /// Partitions per topic.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: i32,
        /// Replication factor.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        replication: i32,
    },
    /// List every topic the cluster has.
    #[command(after_help = EXIT_CODES)]
    List,
}

/// How a command ended when it did not fail.
pub(crate) enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: the command worked and found problems.
    Problems,
}

/// A failure: exit 2 with the message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error("{0}")]
    Usage(String),
}

/// Set by SIGINT/SIGTERM: the long-running commands stop cleanly at their next poll.
pub(crate) fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration only fails for forbidden signals; these two are allowed.
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    stop
}

/// Whether to colour stdout: a terminal, and no `NO_COLOR`.
fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn run_tail(opts: &ClientOptions, global: &Global, a: &TailArgs) -> Result<Outcome, CliError> {
    let topics = global.topics(
        opts,
        &a.topics,
        a.all,
        "name the topics to tail (e.g. omninode.logging.audit.v1) or pass --all",
    )?;
    let req = tail::Request {
        topics,
        start: a.start(),
        follow: a.follow,
        max: a.max,
        filter: tail::Filter {
            types: a.types.clone(),
            correlation_id: a.correlation_id.clone(),
            tenant: a.tenant.clone(),
        },
    };
    let colour = colour();
    let stop = stop_flag();
    let mut out = std::io::stdout().lock();
    tail::run(opts, &req, &stop, |rec, facts| {
        writeln!(
            out,
            "{}",
            format::render(rec, facts, a.format.into(), colour)
        )?;
        out.flush()
    })?;
    Ok(Outcome::Ok)
}

fn run_topics(
    opts: &ClientOptions,
    global: &Global,
    cmd: &TopicsCommand,
) -> Result<Outcome, CliError> {
    match cmd {
        TopicsCommand::Create {
            partitions,
            replication,
        } => {
            let report =
                ops::create_catalog_topics(opts, &global.topic_prefix, *partitions, *replication)?;
            for t in &report.created {
                println!("created  {t}");
            }
            for t in &report.existing {
                println!("existing {t}");
            }
            println!(
                "{} topics: {} created, {} already existed",
                report.created.len() + report.existing.len(),
                report.created.len(),
                report.existing.len()
            );
        }
        TopicsCommand::List => {
            for t in ops::list_topics(opts)? {
                println!("{}", t.name);
            }
        }
    }
    Ok(Outcome::Ok)
}

fn sanitize() -> Result<Outcome, CliError> {
    let io = |what: &str, source| OpsError::Io {
        what: what.into(),
        source,
    };
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .map_err(|e| io("reading stdin", e))?;
    let clean = tracing_omninode::Sanitizer::default();
    std::io::stdout()
        .write_all(
            clean
                .sanitize_str(&String::from_utf8_lossy(&raw))
                .as_bytes(),
        )
        .map_err(|e| io("writing stdout", e))?;
    Ok(Outcome::Ok)
}

fn run(cli: &Cli) -> Result<Outcome, CliError> {
    let opts = || cli.global.client_options();
    match &cli.command {
        Command::Sanitize => sanitize(),
        Command::Tail(a) => run_tail(&opts()?, &cli.global, a),
        Command::Validate(a) => validate::run(cli.global.client_options(), &cli.global, a),
        Command::Dlq(cmd) => dlq::run(&opts()?, &cli.global, cmd),
        Command::Topics(cmd) => run_topics(&opts()?, &cli.global, cmd),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(e) => {
            eprintln!("omninode-events: {e}");
            ExitCode::from(2)
        }
    }
}
