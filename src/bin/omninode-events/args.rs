//! Arguments shared by the subcommands, and the parsers of their values.

use std::time::{Duration, SystemTime};

use clap::{Args, ValueEnum};
use tracing_omninode::ops::{self, format::Format, ClientOptions, Start};

use crate::CliError;

/// Options of every subcommand.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Kafka brokers, `host:port[,host:port]`.
    #[arg(long, global = true, env = "OMNINODE_KAFKA_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,
    /// Prefix of every topic name (e.g. `staging.`); never part of event_type.
    #[arg(
        long,
        global = true,
        alias = "prefix",
        env = "OMNINODE_TOPIC_PREFIX",
        default_value = ""
    )]
    pub topic_prefix: String,
    /// A librdkafka property for every client (consumer, producer, admin), like kcat's -X:
    /// -X security.protocol=SASL_SSL -X sasl.mechanism=PLAIN ... Repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", global = true, value_parser = key_value)]
    pub property: Vec<(String, String)>,
    /// How long a broker has to answer before the command gives up (e.g. 10s, 500ms).
    #[arg(long, global = true, default_value = "10s", value_parser = duration)]
    pub timeout: Duration,
}

impl Global {
    /// The client options, or the usage error that says the broker is missing.
    pub fn client_options(&self) -> Result<ClientOptions, CliError> {
        let servers = self.bootstrap_servers.clone().ok_or_else(|| {
            CliError::Usage(
                "missing --bootstrap-servers HOST:PORT (or set OMNINODE_KAFKA_BOOTSTRAP_SERVERS)"
                    .into(),
            )
        })?;
        let mut opts = ClientOptions::new(servers);
        opts.properties = self.property.clone();
        opts.timeout = self.timeout;
        Ok(opts)
    }

    /// The Kafka topics named (the prefix added), or with `all` every catalog topic and
    /// DLQ twin under the prefix that the cluster has; `usage` when neither was given.
    pub fn topics(
        &self,
        opts: &ClientOptions,
        names: &[String],
        all: bool,
        usage: &str,
    ) -> Result<Vec<String>, CliError> {
        if all {
            return Ok(ops::existing_catalog_topics(
                opts,
                &self.topic_prefix,
                true,
            )?);
        }
        if names.is_empty() {
            return Err(CliError::Usage(usage.into()));
        }
        Ok(names
            .iter()
            .map(|t| ops::topic_name(&self.topic_prefix, t))
            .collect())
    }
}

/// `tail` options.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// Topics, as event types (the prefix is added) or full names; `.dlq` topics too.
    pub topics: Vec<String>,
    /// Every catalog topic and its `.dlq` twin under the prefix that the cluster has.
    #[arg(long)]
    pub all: bool,
    /// Only event types matching this glob (`*`, `?`); repeatable, any may match.
    #[arg(long = "type", value_name = "GLOB")]
    pub types: Vec<String>,
    /// Only this correlation id.
    #[arg(long, value_name = "ID")]
    pub correlation_id: Option<String>,
    /// Only this tenant.
    #[arg(long, value_name = "T")]
    pub tenant: Option<String>,
    /// Where to start: beginning, end, an RFC 3339 time (2026-11-28T14:00:00Z) or an age
    /// (-15m, -2h). Default: beginning, or end with --follow.
    #[arg(long, value_parser = start, allow_hyphen_values = true)]
    pub from: Option<Start>,
    /// Keep printing new records instead of stopping at the end of each partition.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Stop after N printed records.
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    /// Output: pretty (one line per event; colour on a terminal), json (one object per
    /// record with key and headers) or raw (the value).
    #[arg(long, value_enum, default_value_t = OutputFormat::Pretty)]
    pub format: OutputFormat,
}

impl TailArgs {
    pub fn start(&self) -> Start {
        self.from.unwrap_or(if self.follow {
            Start::End
        } else {
            Start::Beginning
        })
    }
}

/// `--format` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OutputFormat {
    Pretty,
    Json,
    Raw,
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Format {
        match f {
            OutputFormat::Pretty => Format::Pretty,
            OutputFormat::Json => Format::Json,
            OutputFormat::Raw => Format::Raw,
        }
    }
}

/// `KEY=VALUE`.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!(
            "`{s}` is not KEY=VALUE (e.g. -X security.protocol=SASL_SSL)"
        )),
    }
}

/// A duration such as `30s`, `15m`, `500ms`, `1h 30m`.
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 30s, 15m, 500ms"))
}

/// An RFC 3339 time (any offset) or an age (`-15m`: that long ago).
pub(crate) fn time(s: &str) -> Result<SystemTime, String> {
    if let Some(age) = s.strip_prefix('-') {
        let d = duration(age)?;
        return SystemTime::now()
            .checked_sub(d)
            .ok_or_else(|| format!("`{s}` reaches before 1970"));
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .map_err(|e| {
            format!("`{s}` is not an RFC 3339 time ({e}); write e.g. 2026-11-28T14:00:00Z or -15m")
        })
}

/// `beginning`, `end`, or a [`time()`].
pub(crate) fn start(s: &str) -> Result<Start, String> {
    match s {
        "beginning" => Ok(Start::Beginning),
        "end" => Ok(Start::End),
        _ => time(s).map(Start::Time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_or_say_how_to_write_them() {
        assert_eq!(start("beginning"), Ok(Start::Beginning));
        assert_eq!(start("end"), Ok(Start::End));
        let Ok(Start::Time(t)) = start("2026-11-28T14:00:00+01:00") else {
            panic!()
        };
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_795_870_800);
        let Ok(Start::Time(t)) = start("-15m") else {
            panic!()
        };
        let ago = SystemTime::now().duration_since(t).unwrap();
        assert!(ago >= Duration::from_secs(900) && ago < Duration::from_secs(910));
        assert!(start("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(duration("soon").unwrap_err().contains("30s"));
        assert_eq!(key_value("a.b=c=d"), Ok(("a.b".into(), "c=d".into())));
        assert!(key_value("novalue").is_err());
    }
}
