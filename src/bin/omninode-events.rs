//! `omninode-events`: topic provisioning and log sanitizing from the command line.
//!
//! ```text
//! omninode-events topics create --bootstrap-servers HOST:PORT [--prefix P] [--partitions N] [--replication N]
//! omninode-events topics list   --bootstrap-servers HOST:PORT
//! omninode-events sanitize < app.log > app.clean.log
//! ```

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use tracing_omninode::topics::{create_topics, list_topics, TopicSpec};

const USAGE: &str = "usage:
  omninode-events topics create --bootstrap-servers HOST:PORT [--prefix P] [--partitions N] [--replication N]
  omninode-events topics list --bootstrap-servers HOST:PORT
  omninode-events sanitize   (reads stdin, writes the sanitized text to stdout)

--bootstrap-servers defaults to $OMNINODE_KAFKA_BOOTSTRAP_SERVERS.";

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            let prefix = format!("{name}=");
            args.iter()
                .find_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
        })
}

fn bootstrap(args: &[String]) -> Result<String, String> {
    flag(args, "--bootstrap-servers")
        .or_else(|| std::env::var("OMNINODE_KAFKA_BOOTSTRAP_SERVERS").ok())
        .ok_or_else(|| "missing --bootstrap-servers HOST:PORT".to_owned())
}

fn number(args: &[String], name: &str, default: i32) -> Result<i32, String> {
    match flag(args, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name} wants a positive number, got `{v}`")),
    }
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("topics") => match args.get(1).map(String::as_str) {
            Some("create") => {
                let mut spec = TopicSpec::new(bootstrap(args)?);
                spec.prefix = flag(args, "--prefix").unwrap_or_default();
                spec.partitions = number(args, "--partitions", spec.partitions)?;
                spec.replication = number(args, "--replication", spec.replication)?;
                let report = create_topics(&spec).map_err(|e| e.to_string())?;
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
                Ok(())
            }
            Some("list") => {
                let topics = list_topics(&bootstrap(args)?, Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                for t in topics {
                    println!("{t}");
                }
                Ok(())
            }
            _ => Err(USAGE.into()),
        },
        Some("sanitize") => {
            let mut input = String::new();
            let mut raw = Vec::new();
            std::io::stdin()
                .read_to_end(&mut raw)
                .map_err(|e| format!("reading stdin: {e}"))?;
            input.push_str(&String::from_utf8_lossy(&raw));
            let clean = tracing_omninode::Sanitizer::default();
            std::io::stdout()
                .write_all(clean.sanitize_str(&input).as_bytes())
                .map_err(|e| format!("writing stdout: {e}"))
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("omninode-events: {e}");
            ExitCode::from(2)
        }
    }
}
