// SPDX-License-Identifier: AGPL-3.0-or-later
//! The SIP messages of the most recent calls, kept in memory by a live sensor
//! (`capture --http`, `--keep-messages-mb`) for the call pages' ladders, message lists and
//! pcaps.
//!
//! Bounded by bytes: when a new message would pass the budget, the calls whose first message
//! came earliest go, whole, until it fits. A call is never cut in half to make room for
//! another; a single call bigger than the whole budget keeps its first messages only.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use super::kept::{pcap_of, KeptMessage};
use super::messages::{CallMessages, MessagesError};
use crate::inspect::dump::DumpedMessage;
use crate::parse_stage::SeenMessage;
use crate::pipeline::MessageTap;

/// What the store holds and has let go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RecentCounts {
    /// Calls whose messages are held.
    pub calls: u64,
    /// Messages held.
    pub messages: u64,
    /// Bytes they take.
    pub bytes: u64,
    /// The budget.
    pub budget_bytes: u64,
    /// Calls let go, oldest first, to make room.
    pub calls_evicted: u64,
    /// Messages not kept because their call alone filled the budget.
    pub messages_refused: u64,
}

/// The messages of the most recent calls, within a byte budget.
#[derive(Debug)]
pub struct RecentMessages {
    budget: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    by_call: HashMap<String, Vec<KeptMessage>>,
    /// Call-IDs by their first message, oldest first.
    order: VecDeque<String>,
    bytes: usize,
    messages: usize,
    calls_evicted: u64,
    messages_refused: u64,
}

impl RecentMessages {
    /// An empty store holding at most `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            held: Mutex::new(Held::default()),
        }
    }

    /// Keeps a message, letting the oldest calls go if it would not fit.
    pub fn keep(&self, message: KeptMessage) {
        let size = message.size();
        let Ok(mut held) = self.held.lock() else {
            return;
        };
        let held = &mut *held;
        while held.bytes + size > self.budget {
            // The oldest call goes, unless it is this message's own (then nothing older is
            // left to let go).
            match held.order.front() {
                Some(oldest) if *oldest != message.call_id => {
                    let oldest = held.order.pop_front().unwrap_or_default();
                    if let Some(gone) = held.by_call.remove(&oldest) {
                        held.bytes -= gone.iter().map(KeptMessage::size).sum::<usize>();
                        held.messages -= gone.len();
                        held.calls_evicted += 1;
                    }
                }
                _ => {
                    held.messages_refused += 1;
                    return;
                }
            }
        }
        held.bytes += size;
        held.messages += 1;
        match held.by_call.get_mut(&message.call_id) {
            Some(messages) => messages.push(message),
            None => {
                held.order.push_back(message.call_id.clone());
                held.by_call.insert(message.call_id.clone(), vec![message]);
            }
        }
    }

    /// What is held now.
    pub fn counts(&self) -> RecentCounts {
        let Ok(held) = self.held.lock() else {
            return RecentCounts::default();
        };
        RecentCounts {
            calls: held.by_call.len() as u64,
            messages: held.messages as u64,
            bytes: held.bytes as u64,
            budget_bytes: self.budget as u64,
            calls_evicted: held.calls_evicted,
            messages_refused: held.messages_refused,
        }
    }

    /// Copies of the messages of these calls, in capture order.
    fn of_calls(&self, call_ids: &HashSet<String>) -> Vec<KeptMessage> {
        let mut found: Vec<KeptMessage> = match self.held.lock() {
            Ok(held) => call_ids
                .iter()
                .filter_map(|id| held.by_call.get(id))
                .flatten()
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        // Messages parsed on two threads may have come a batch out of order.
        found.sort_by_key(|m| m.time);
        found
    }
}

impl MessageTap for RecentMessages {
    fn message(&self, message: &SeenMessage<'_, '_, '_>) {
        self.keep(KeptMessage::of(message));
    }
}

impl CallMessages for RecentMessages {
    fn messages(&self, call_ids: &HashSet<String>) -> Result<Vec<DumpedMessage>, MessagesError> {
        Ok(self
            .of_calls(call_ids)
            .iter()
            .map(KeptMessage::dumped)
            .collect())
    }

    fn pcap(&self, call_ids: &HashSet<String>) -> Result<Vec<u8>, MessagesError> {
        Ok(pcap_of(&self.of_calls(call_ids)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Timestamp;
    use crate::decode::Transport;

    fn message(call_id: &str, time: i64, body: usize) -> KeptMessage {
        KeptMessage {
            time: Timestamp(time),
            src: "10.0.0.1:5060".parse().expect("address"),
            dst: "10.0.0.2:5060".parse().expect("address"),
            transport: Transport::Udp,
            call_id: call_id.into(),
            raw: vec![b'x'; body],
        }
    }

    fn ids(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn lets_the_oldest_calls_go_whole_to_stay_within_its_budget() {
        let size = message("a", 0, 904).size();
        // Room for five messages.
        let store = RecentMessages::new(5 * size);
        for (n, call) in ["a", "a", "b", "b", "c"].iter().enumerate() {
            store.keep(message(call, n as i64, 904));
        }
        assert_eq!(store.counts().messages, 5);
        store.keep(message("c", 10, 904));
        let counts = store.counts();
        assert_eq!(
            (counts.calls, counts.messages),
            (2, 4),
            "call a went, whole"
        );
        assert_eq!(counts.calls_evicted, 1);
        assert!(counts.bytes <= counts.budget_bytes);
        assert!(store.of_calls(&ids(&["a"])).is_empty());
        assert_eq!(store.of_calls(&ids(&["b", "c"])).len(), 4);
    }

    #[test]
    fn a_call_bigger_than_the_budget_keeps_its_first_messages() {
        let size = message("a", 0, 904).size();
        let store = RecentMessages::new(2 * size);
        for n in 0..4 {
            store.keep(message("a", n, 904));
        }
        let counts = store.counts();
        assert_eq!((counts.messages, counts.messages_refused), (2, 2));
        let kept = store.of_calls(&ids(&["a"]));
        assert_eq!(kept.iter().map(|m| m.time.0).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn gives_messages_in_capture_order_whatever_order_they_came_in() {
        let store = RecentMessages::new(1 << 20);
        for time in [3, 1, 2] {
            store.keep(message("a", time, 10));
        }
        let times: Vec<i64> = store
            .messages(&ids(&["a"]))
            .expect("messages")
            .iter()
            .map(|m| m.time.0)
            .collect();
        assert_eq!(times, [1, 2, 3]);
        let pcap = store.pcap(&ids(&["a"])).expect("pcap");
        assert_eq!(pcap.len(), 24 + 3 * (16 + 14 + 20 + 8 + 10));
    }
}
