// SPDX-License-Identifier: AGPL-3.0-or-later
//! Least privilege for a live capture: once its program is attached and its ring, sockets and
//! outputs are open, the sensor gives up every capability no later step needs, and may become
//! an unprivileged user, for the rest of its (long) life.

use std::ffi::CString;

use caps::{CapSet, Capability, CapsHashSet};

/// Why privileges could not be dropped. The capture does not go on with more than it asked
/// to keep.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// No such user.
    #[error("--user {0}: no such user")]
    NoUser(String),
    /// A system call refused.
    #[error("dropping privileges: {what}: {source}")]
    Call {
        /// Which step.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The capability sets could not be changed.
    #[error("dropping capabilities: {0}")]
    Caps(#[from] caps::errors::CapsError),
}

/// What is kept after the drop, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    /// Capabilities still needed, each with the step that needs it.
    pub capabilities: Vec<(Capability, &'static str)>,
}

/// What the drop did, for the start-up message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The user now running the sensor, if it changed.
    pub user: Option<(String, u32)>,
    /// What was kept, and why.
    pub kept: Vec<(Capability, &'static str)>,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("privileges dropped")?;
        if let Some((name, uid)) = &self.user {
            write!(f, "; running as {name} (uid {uid})")?;
        }
        if self.kept.is_empty() {
            return f.write_str("; no capabilities kept");
        }
        for (cap, why) in &self.kept {
            write!(f, "; kept {cap} ({why})")?;
        }
        Ok(())
    }
}

/// Gives up every capability but `keep`'s (effective, permitted, inheritable, ambient and,
/// where allowed, bounding sets), switches to `user` if one is named, and forbids gaining
/// privileges again (`no_new_privs`).
pub fn drop_privileges(user: Option<&str>, keep: &Keep) -> Result<Dropped, PrivilegeError> {
    let call = |what: &'static str, rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(PrivilegeError::Call {
                what,
                source: std::io::Error::last_os_error(),
            })
        }
    };
    let kept: CapsHashSet = keep.capabilities.iter().map(|(c, _)| *c).collect();
    let account = user.map(lookup).transpose()?;
    // The bounding set first: shrinking it needs CAP_SETPCAP, which goes with the rest.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)? {
        for cap in caps::all() {
            if !kept.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)?;
            }
        }
    }
    if let Some(account) = &account {
        if !kept.is_empty() {
            // SAFETY: prctl with integer arguments only.
            call("PR_SET_KEEPCAPS", unsafe {
                libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0)
            })?;
        }
        // SAFETY: one group id, read from a valid array for the duration of the call.
        call("setgroups", unsafe { libc::setgroups(1, &account.gid) })?;
        // SAFETY: plain ids.
        call("setgid", unsafe { libc::setgid(account.gid) })?;
        // SAFETY: plain id.
        call("setuid", unsafe { libc::setuid(account.uid) })?;
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    // Effective first: it must stay within the permitted set at every step.
    caps::set(None, CapSet::Effective, &kept)?;
    caps::set(None, CapSet::Permitted, &kept)?;
    // SAFETY: prctl with integer arguments only.
    call("PR_SET_NO_NEW_PRIVS", unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    })?;
    Ok(Dropped {
        user: account.map(|a| (a.name, a.uid)),
        kept: keep.capabilities.clone(),
    })
}

struct Account {
    name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

fn lookup(name: &str) -> Result<Account, PrivilegeError> {
    let missing = || PrivilegeError::NoUser(name.to_owned());
    let c_name = CString::new(name).map_err(|_| missing())?;
    // SAFETY: a valid C string; the entry is copied out before any other passwd call.
    let entry = unsafe { libc::getpwnam(c_name.as_ptr()) };
    if entry.is_null() {
        return Err(missing());
    }
    // SAFETY: non-null, as returned by getpwnam.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Account {
        name: name.to_owned(),
        uid,
        gid,
    })
}

/// The kernel release as (major, minor), from uname.
pub fn kernel_release() -> Option<(u32, u32)> {
    // SAFETY: uname fills the zeroed struct it is given.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    let release: String = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// What a live capture in `mode` still needs once attached: nothing on current kernels.
/// Before Linux 6.5, with unprivileged BPF disabled, reading the programs' counter map needs
/// CAP_BPF (CAP_SYS_ADMIN before 5.8); before 5.9, XDP is attached over netlink and
/// detaching it at exit needs CAP_NET_ADMIN.
pub fn needed_after_attach(mode: crate::capture::CaptureMode) -> Keep {
    use crate::capture::CaptureMode;
    let release = kernel_release().unwrap_or((0, 0));
    let mut capabilities = Vec::new();
    if mode == CaptureMode::Pcap {
        return Keep { capabilities };
    }
    let bpf_disabled = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map_or(true, |v| v.trim() != "0");
    if release < (6, 5) && bpf_disabled {
        let cap = if release < (5, 8) {
            Capability::CAP_SYS_ADMIN
        } else {
            Capability::CAP_BPF
        };
        capabilities.push((cap, "to read the kernel program's counters"));
    }
    if mode == CaptureMode::Xdp && release < (5, 9) {
        capabilities.push((
            Capability::CAP_NET_ADMIN,
            "to detach the XDP program at exit",
        ));
    }
    Keep { capabilities }
}
