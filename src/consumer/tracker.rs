//! Retry counts of the messages a service is working on, in bounded memory.

use std::collections::{HashMap, VecDeque};

use crate::contract::timestamp::Timestamp;

/// A message: topic, partition, offset. (Its Kafka key is not unique: many messages share
/// a tenant or a correlation id.)
pub(crate) type MessageId = (String, i32, i64);

/// How often one message failed, and when first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempts {
    /// Failures so far.
    pub failures: u32,
    /// When the first one happened.
    pub first_failed_at: Timestamp,
}

/// The failures of at most `capacity` messages; the one tracked longest is forgotten
/// first (its count starts again if it fails once more).
#[derive(Debug)]
pub(crate) struct Tracker {
    capacity: usize,
    entries: HashMap<MessageId, Attempts>,
    order: VecDeque<MessageId>,
}

impl Tracker {
    pub fn new(capacity: usize) -> Self {
        Tracker {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Counts one more failure of `id`; returns its attempts so far.
    pub fn fail(&mut self, id: &MessageId) -> Attempts {
        if let Some(a) = self.entries.get_mut(id) {
            a.failures += 1;
            return *a;
        }
        while self.entries.len() >= self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&old);
        }
        let a = Attempts {
            failures: 1,
            first_failed_at: Timestamp::now(),
        };
        self.entries.insert(id.clone(), a);
        self.order.push_back(id.clone());
        a
    }

    /// Forgets `id` (handled, or dead-lettered).
    pub fn forget(&mut self, id: &MessageId) {
        if self.entries.remove(id).is_some() {
            self.order.retain(|o| o != id);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(o: i64) -> MessageId {
        ("t".into(), 0, o)
    }

    #[test]
    fn counts_per_message_and_stays_bounded() {
        let mut t = Tracker::new(2);
        assert_eq!(t.fail(&id(1)).failures, 1);
        assert_eq!(t.fail(&id(1)).failures, 2);
        let first = t.fail(&id(1)).first_failed_at;
        t.fail(&id(2));
        t.fail(&id(3)); // evicts 1, the oldest
        assert_eq!(t.len(), 2);
        assert_eq!(t.fail(&id(1)).failures, 1, "forgotten, counts again");
        assert!(t.fail(&id(1)).first_failed_at >= first);
        t.forget(&id(1));
        assert_eq!(t.len(), 1);
        t.forget(&id(9));
        assert_eq!(t.len(), 1);
    }
}
