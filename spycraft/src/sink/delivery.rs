// SPDX-License-Identifier: AGPL-3.0-or-later
//! What an output that delivers from a spool on a thread of its own (PostgreSQL, RADIUS)
//! shares with that thread: when to stop, how long to keep trying, and how delivery stands.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::spool::SpoolWriter;
use super::DeliveryStatus;

/// Shared between a spooled output and its delivery thread.
#[derive(Debug, Default)]
pub struct DeliveryControl {
    /// Set at the end of the run: deliver what is left, then stop.
    closing: AtomicBool,
    /// When closing, the moment to give up on an unreachable destination.
    give_up_at: Mutex<Option<Instant>>,
    /// Wakes the delivery thread (closing, or work arrived).
    pub wake: Notify,
    /// Why the destination cannot be reached now, while it cannot.
    unreachable: Mutex<Option<String>>,
    /// When something was last delivered.
    last_delivery: Mutex<Option<Instant>>,
}

impl DeliveryControl {
    /// Asks the thread to deliver what is left and stop, giving up on an unreachable
    /// destination after `drain_timeout`.
    pub fn close(&self, drain_timeout: Duration) {
        if let Ok(mut t) = self.give_up_at.lock() {
            *t = Some(Instant::now() + drain_timeout);
        }
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether the run is ending. Seen true, everything the run wrote before is visible.
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Whether the run is ending and the drain timeout has passed.
    pub fn giving_up(&self) -> bool {
        self.closing()
            && self
                .give_up_at
                .lock()
                .map(|t| t.is_some_and(|t| Instant::now() >= t))
                .unwrap_or(true)
    }

    /// Notes why the destination cannot be reached (`None`: it can again).
    pub fn set_unreachable(&self, why: Option<String>) {
        if let Ok(mut u) = self.unreachable.lock() {
            *u = why;
        }
    }

    /// Notes a delivery just now.
    pub fn delivered_now(&self) {
        if let Ok(mut t) = self.last_delivery.lock() {
            *t = Some(Instant::now());
        }
    }

    /// Sleeps, waking early when the run ends.
    pub async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.wake.notified() => {}
        }
    }

    /// How delivery from `spool` stands.
    pub fn status(&self, spool: &SpoolWriter) -> DeliveryStatus {
        let last = self.last_delivery.lock().ok().and_then(|t| *t);
        let unreachable = self.unreachable.lock().ok().and_then(|u| u.clone());
        spool.delivery_status(last, unreachable)
    }
}
