// SPDX-License-Identifier: AGPL-3.0-or-later
//! Small filesystems that fill up: a tmpfs of a few KiB, mounted for one test (as root) and
//! unmounted when it is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::postgres::is_root;

/// A mounted tmpfs.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `kib` KiB at a fresh directory named `name`; `None` (after saying
    /// why) when not root outside CI. Under CI=true it must work.
    pub fn mount(name: &str, kib: u32) -> Option<Self> {
        if !is_root() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the full-disk tests must run in CI, as root"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = super::scratch(name);
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("mount runs");
        assert!(out.status.success(), "mount: {}", super::text(&out.stderr));
        Some(Self(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Fills what is left with a file, which [`Tmpfs::free`] removes.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).expect("filler");
        while f.write_all(&[b'x'; 4096]).is_ok() {}
        // The last partial page too.
        while f.write_all(b"x").is_ok() {}
    }

    pub fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).expect("the filler was there");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
