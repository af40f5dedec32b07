// SPDX-License-Identifier: AGPL-3.0-or-later
//! Keeps an eye on a captured interface: one that is removed ends the capture; one that goes
//! down and comes back up is followed, and both changes are said on stderr.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::LiveError;

/// How often the interface is looked at.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The interface a capture runs on, by index (which a rename keeps).
#[derive(Debug)]
pub(crate) struct InterfaceWatch {
    name: String,
    index: u32,
    up: bool,
    looked_at: Instant,
}

impl InterfaceWatch {
    pub(crate) fn new(name: &str, index: u32) -> Self {
        Self {
            name: name.to_owned(),
            index,
            up: is_up(name).unwrap_or(true),
            looked_at: Instant::now(),
        }
    }

    /// `Err` once the interface no longer exists; looks at most once a second.
    pub(crate) fn check(&mut self) -> Result<(), LiveError> {
        if self.looked_at.elapsed() < LOOK_EVERY {
            return Ok(());
        }
        self.looked_at = Instant::now();
        let Some(name) = name_of(self.index) else {
            return Err(LiveError::Removed(self.name.clone()));
        };
        self.name = name;
        let Some(up) = is_up(&self.name) else {
            return Err(LiveError::Removed(self.name.clone()));
        };
        if up != self.up {
            self.up = up;
            if up {
                eprintln!("spycraft: {} is up again; capturing", self.name);
            } else {
                eprintln!(
                    "spycraft: WARNING: {} is down; still capturing, and waiting for it to come back",
                    self.name
                );
            }
        }
        Ok(())
    }
}

/// The interface's name now, or `None` when no interface has that index.
fn name_of(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// Whether the interface is administratively up (IFF_UP); `None` when it does not exist.
fn is_up(name: &str) -> Option<bool> {
    // SAFETY: socket(2) with constant arguments; checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Some(true);
    }
    // SAFETY: a descriptor we just opened and own alone.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain data; zero is a valid start.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= request.ifr_name.len() {
        return None;
    }
    for (slot, &b) in request.ifr_name.iter_mut().zip(bytes) {
        *slot = b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes the flags into `request`.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) };
    if rc != 0 {
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENODEV | libc::ENXIO) => None,
            _ => Some(true),
        };
    }
    // SAFETY: after SIOCGIFFLAGS the union holds the flags.
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    Some(i32::from(flags) & libc::IFF_UP != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_there_and_up_and_a_missing_interface_is_not() {
        assert_eq!(is_up("lo"), Some(true));
        assert_eq!(is_up("spycraft-none0"), None);
        assert_eq!(name_of(1).as_deref(), Some("lo"));
        let mut watch = InterfaceWatch::new("gone", 0x7fff_fff0);
        watch.looked_at -= LOOK_EVERY;
        assert!(watch
            .check()
            .expect_err("no such index")
            .to_string()
            .contains("removed"));
    }
}
