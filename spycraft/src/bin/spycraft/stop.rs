// SPDX-License-Identifier: AGPL-3.0-or-later
//! SIGINT and SIGTERM end a run cleanly instead of killing the process.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT and SIGTERM: sources end, the run finishes and writes what it has.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Release);
}

/// Set by SIGHUP: the capture re-reads its settings file and applies what it can live.
pub static RELOAD: AtomicBool = AtomicBool::new(false);

/// Set by SIGHUP: the file outputs are opened again (log rotation).
pub static REOPEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_reload_signal(_: libc::c_int) {
    RELOAD.store(true, Ordering::Release);
    REOPEN.store(true, Ordering::Release);
}

/// SIGHUP raises [`RELOAD`] and [`REOPEN`] instead of ending the process.
pub fn install_reload_handler() {
    // SAFETY: as in `install_handlers`: the handler only stores to atomics.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_reload_signal as *const () as usize;
        libc::sigaction(libc::SIGHUP, &action, std::ptr::null_mut());
    }
}

/// SIGINT and SIGTERM raise [`STOP`] instead of killing the process.
pub fn install_handlers() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is zeroed (no flags, empty mask) before the handler is set.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as *const () as usize;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    STOP.load(Ordering::Acquire)
}
