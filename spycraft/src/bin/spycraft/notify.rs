// SPDX-License-Identifier: AGPL-3.0-or-later
//! systemd's notification protocol (`Type=notify`): READY once capturing, WATCHDOG while the
//! pipeline turns, STOPPING when shutting down. A datagram to `$NOTIFY_SOCKET`; nothing when
//! not run by systemd.

use std::cell::Cell;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// Where systemd listens, and how often it wants to hear from the watchdog.
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
    watchdog: Option<(Duration, Cell<Instant>)>,
}

impl Notifier {
    /// The notifier systemd's environment describes, if it does.
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_str()?;
        let to = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name).ok()?
            }
            None => SocketAddr::from_pathname(path).ok()?,
        };
        // Half the interval systemd allows, as sd_watchdog_enabled advises.
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|us| us.parse::<u64>().ok())
            .filter(|_| {
                std::env::var("WATCHDOG_PID")
                    .map_or(true, |pid| pid == std::process::id().to_string())
            })
            .map(|us| (Duration::from_micros(us / 2), Cell::new(Instant::now())));
        Some(Self {
            socket: UnixDatagram::unbound().ok()?,
            to,
            watchdog,
        })
    }

    /// Sends one state line (`READY=1`, `STOPPING=1`, `STATUS=…`).
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.to) {
            eprintln!("spycraft: WARNING: telling systemd {state:?}: {e}");
        }
    }

    /// Pets the watchdog when half its interval has passed; called from the run's progress
    /// reports, so it stops when the pipeline stops turning.
    pub fn watchdog(&self) {
        if let Some((every, last)) = &self.watchdog {
            if last.get().elapsed() >= *every {
                last.set(Instant::now());
                let _ = self.socket.send_to_addr(b"WATCHDOG=1", &self.to);
            }
        }
    }
}
