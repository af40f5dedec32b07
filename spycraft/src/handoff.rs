// SPDX-License-Identifier: AGPL-3.0-or-later
//! A value handed from one thread to another that takes it when it next looks (a reload's new
//! filter for a live source, its changes for the pipeline). A newer value replaces one not yet
//! taken: only the latest matters.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Where a value waits for the thread that takes it.
#[derive(Debug)]
pub struct Handoff<T>(Mutex<Option<T>>);

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<T> Handoff<T> {
    /// Leaves `value`, replacing one not yet taken.
    pub fn put(&self, value: T) {
        *self.lock() = Some(value);
    }

    /// The value waiting, if any.
    pub(crate) fn take(&self) -> Option<T> {
        self.lock().take()
    }

    fn lock(&self) -> MutexGuard<'_, Option<T>> {
        // A panic elsewhere leaves a plain value behind: still usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
