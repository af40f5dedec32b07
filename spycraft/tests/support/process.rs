// SPDX-License-Identifier: AGPL-3.0-or-later
//! Child processes of the privileged tests: sensors, sipp, tcpdump.

use std::process::{Child, Command};

use super::postgres::is_root;

/// Runs iproute2's `ip` with `args` and fails the test if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        super::text(&out.stderr)
    );
}

/// Whether this run may capture; panics under CI=true when it may not.
pub fn may_capture() -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "live capture tests must run in CI, as root"
    );
    eprintln!("skipped: live capture needs root");
    false
}

/// Kills the child on every path out of the test, unless it was waited for.
pub struct Reaped(Option<Child>);

impl Reaped {
    pub fn spawn(cmd: &mut Command) -> Self {
        Self(Some(cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))))
    }

    /// Takes charge of a child already started.
    pub fn spawn_from(child: Child) -> Self {
        Self(Some(child))
    }

    pub fn child(&self) -> &Child {
        self.0.as_ref().expect("running")
    }

    /// Waits for the child and collects what it printed.
    pub fn output(mut self) -> std::process::Output {
        self.0
            .take()
            .expect("running")
            .wait_with_output()
            .expect("waited")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn interrupt(child: &Child) {
    // SAFETY: kill with our own child's pid and a valid signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}
