//! `tail`: read topics (and their `.dlq` twins) from a start point, keep the records that
//! pass a [`Filter`], hand each to the caller. Without `follow` it stops at the end of every
//! partition; it never commits an offset.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::kafka::client::{ClientOptions, OpsError};
use crate::kafka::consumer::{Reader, Record, Start};
use crate::ops::format::Facts;
use crate::ops::POLL;

/// Which records `tail` shows. Every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Event-type globs (`*` any text, `?` one character); any may match. Empty: all.
    pub types: Vec<String>,
    /// Exact correlation id.
    pub correlation_id: Option<String>,
    /// Exact tenant.
    pub tenant: Option<String>,
}

impl Filter {
    /// Whether a record with these facts passes.
    pub fn matches(&self, facts: &Facts) -> bool {
        let same = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        let type_ok = self.types.is_empty()
            || facts
                .event_type
                .as_deref()
                .is_some_and(|t| self.types.iter().any(|g| glob_match(g, t)));
        type_ok
            && same(&self.correlation_id, &facts.correlation_id)
            && same(&self.tenant, &facts.tenant)
    }
}

/// Matches `text` against a glob of `*` (any run of characters) and `?` (one character).
pub fn glob_match(glob: &str, text: &str) -> bool {
    let (g, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    // Greedy with one backtrack point: the position after the last `*`.
    let (mut gi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == t[ti]) {
            gi += 1;
            ti += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ti;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

/// What to read and how long.
#[derive(Debug, Clone)]
pub struct Request {
    /// Kafka topics (full names).
    pub topics: Vec<String>,
    /// Where each partition starts.
    pub start: Start,
    /// Keep reading new records instead of stopping at the end.
    pub follow: bool,
    /// Stop after this many shown records.
    pub max: Option<u64>,
    /// Which records to show.
    pub filter: Filter,
}

/// How much `tail` read and showed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records read.
    pub read: u64,
    /// Records that passed the filter and were shown.
    pub shown: u64,
}

/// Reads `req.topics` and calls `show` with each record that passes the filter, until the
/// end of every partition (or `max`, or `stop` is set). An error from `show` (a closed
/// pipe) ends the run quietly.
pub fn run(
    opts: &ClientOptions,
    req: &Request,
    stop: &AtomicBool,
    mut show: impl FnMut(&Record, &Facts) -> std::io::Result<()>,
) -> Result<Summary, OpsError> {
    let mut reader = Reader::open(opts, &req.topics, req.start, req.follow)?;
    let mut summary = Summary::default();
    while !stop.load(Ordering::Relaxed)
        && !reader.finished()
        && req.max.is_none_or(|m| summary.shown < m)
    {
        let Some(rec) = reader.next(POLL)? else {
            continue;
        };
        summary.read += 1;
        let facts = Facts::of(&rec);
        if req.filter.matches(&facts) {
            summary.shown += 1;
            if show(&rec, &facts).is_err() {
                break;
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases = [
            (
                "omninode.agent.*",
                "omninode.agent.execution.failed.v1",
                true,
            ),
            ("*.failed.*", "omninode.agent.execution.failed.v1", true),
            ("*.failed.*", "omninode.agent.execution.started.v1", false),
            (
                "omninode.logging.audit.v?",
                "omninode.logging.audit.v1",
                true,
            ),
            (
                "omninode.logging.audit.v?",
                "omninode.logging.audit.v12",
                false,
            ),
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (g, t, want) in cases {
            assert_eq!(glob_match(g, t), want, "{g} vs {t}");
        }
    }

    #[test]
    fn filter_needs_every_condition() {
        let facts = Facts {
            event_type: Some("omninode.logging.audit.v1".into()),
            correlation_id: Some("c-1".into()),
            tenant: Some("acme".into()),
            ..Facts::default()
        };
        let f = |types: &[&str], corr: Option<&str>, tenant: Option<&str>| Filter {
            types: types.iter().map(|s| s.to_string()).collect(),
            correlation_id: corr.map(str::to_owned),
            tenant: tenant.map(str::to_owned),
        };
        assert!(f(&[], None, None).matches(&facts));
        assert!(f(&["*.audit.*", "x"], Some("c-1"), Some("acme")).matches(&facts));
        assert!(!f(&["*.security.*"], None, None).matches(&facts));
        assert!(!f(&[], Some("c-2"), None).matches(&facts));
        assert!(!f(&[], None, Some("other")).matches(&facts));
        assert!(!f(&["*"], None, None).matches(&Facts::default()));
    }
}
