//! `validate`: a file of JSON lines, stdin, or topics on the cluster.

use std::io::BufReader;

use clap::Args;
use tracing_omninode::ops::check::{self, Checker, Finding};
use tracing_omninode::ops::{ClientOptions, OpsError, Start};

use crate::args::{start, Global};
use crate::{stop_flag, CliError, Outcome};

/// `validate` options.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// A file of JSON lines (bare envelopes, or the records of `tail --format json`, whose
    /// key and headers are then checked too); `-` reads stdin.
    #[arg(value_name = "FILE|-", conflicts_with_all = ["topic", "all"])]
    file: Option<String>,
    /// A topic to read (event type or full name; repeatable).
    #[arg(long, value_name = "T")]
    topic: Vec<String>,
    /// Every catalog topic and `.dlq` twin under the prefix (sequence gaps are meaningful
    /// only over all the topics an instance writes to).
    #[arg(long)]
    all: bool,
    /// Where to start reading topics: beginning (default), end, an RFC 3339 time or an
    /// age like -15m.
    #[arg(long, value_parser = start, allow_hyphen_values = true)]
    from: Option<Start>,
}

pub(crate) fn run(
    opts: Result<ClientOptions, CliError>,
    global: &Global,
    a: &ValidateArgs,
) -> Result<Outcome, CliError> {
    let mut problems = 0u64;
    let print = |f: &Finding| {
        problems += 1;
        println!("{f}");
    };
    let checker: Checker = match &a.file {
        Some(name) if name == "-" => check::check_lines(std::io::stdin().lock(), "stdin", print)?,
        Some(name) => {
            let file = std::fs::File::open(name).map_err(|source| OpsError::Io {
                what: format!("opening {name}"),
                source,
            })?;
            check::check_lines(BufReader::new(file), name, print)?
        }
        None => {
            let opts = opts?;
            let topics = global.topics(
                &opts,
                &a.topic,
                a.all,
                "name a FILE (or - for stdin), --topic T or --all",
            )?;
            let start = a.from.unwrap_or(Start::Beginning);
            check::check_topics(&opts, &topics, start, &stop_flag(), print)?
        }
    };
    println!(
        "checked {} records: {problems} problems ({} records with problems)",
        checker.checked, checker.bad_records,
    );
    Ok(if problems > 0 {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}
