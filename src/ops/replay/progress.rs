//! Which records are settled, so that the group's committed offset never passes a record
//! the broker has not acknowledged.

use std::collections::BTreeMap;

/// Which records of each partition are settled, so that the group's committed offset
/// never passes a record the broker has not acknowledged.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Per `(topic, partition)`: offset -> settled, for every record read and not yet
    /// committed past.
    open: BTreeMap<(String, i32), BTreeMap<i64, bool>>,
}

impl Progress {
    /// A record was read.
    pub fn read(&mut self, topic: &str, partition: i32, offset: i64) {
        self.open
            .entry((topic.to_owned(), partition))
            .or_default()
            .insert(offset, false);
    }

    /// A record is settled (acknowledged, refused or skipped).
    pub fn settle(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(p) = self.open.get_mut(&(topic.to_owned(), partition)) {
            p.insert(offset, true);
        }
    }

    /// For each partition whose oldest records are settled: the offset to commit (one past
    /// the last of them). Those records are forgotten.
    pub fn committable(&mut self) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for ((t, p), offsets) in &mut self.open {
            let mut next = None;
            while let Some(entry) = offsets.first_entry() {
                if !*entry.get() {
                    break;
                }
                next = Some(*entry.key() + 1);
                entry.remove();
            }
            if let Some(n) = next {
                out.push((t.clone(), *p, n));
            }
        }
        out
    }
}
