// SPDX-License-Identifier: AGPL-3.0-or-later
//! `cargo xtask deb`: the Debian package (cargo-deb), and the check CI runs on it: install it
//! with dpkg into this machine, run what it installed, verify its unit, purge it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The cargo-deb release the package is built with.
const CARGO_DEB_VERSION: &str = "3.8.0";

/// Builds the release binary and the package; returns the package's path.
pub fn build(root: &Path) -> Result<PathBuf> {
    ensure_cargo_deb()?;
    crate::build_release(&[])?;
    let out_dir = root.join("target/debian");
    let out = Command::new("cargo")
        .args(["deb", "-p", "spycraft", "--no-build", "--strip", "-o"])
        .arg(&out_dir)
        .current_dir(root)
        .output()
        .context("cargo deb")?;
    if !out.status.success() {
        bail!("cargo deb: {}", String::from_utf8_lossy(&out.stderr));
    }
    // cargo-deb prints the package's path last.
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .context("cargo deb printed no package")?;
    println!("xtask: built {}", path.display());
    Ok(path)
}

fn ensure_cargo_deb() -> Result<()> {
    let have = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_DEB_VERSION));
    if !have {
        crate::run(Command::new("cargo").args([
            "install",
            "--locked",
            "cargo-deb",
            "--version",
            CARGO_DEB_VERSION,
        ]))?;
    }
    Ok(())
}

/// Installs the package, checks what it put in place, and purges it (root only).
pub fn check(root: &Path) -> Result<()> {
    let package = build(root)?;
    crate::run(Command::new("dpkg").arg("-i").arg(&package))?;
    let checked = installed_as_promised();
    crate::run(Command::new("dpkg").args(["--purge", "spycraft"]))?;
    checked?;
    if Path::new("/var/lib/spycraft").exists() || user_exists("spycraft") {
        bail!("purging spycraft left its user or /var/lib/spycraft behind");
    }
    println!("xtask: the Debian package installs, runs, verifies and purges cleanly");
    Ok(())
}

fn installed_as_promised() -> Result<()> {
    let output = |cmd: &mut Command| -> Result<String> {
        let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("{cmd:?}: {said}");
        }
        Ok(said)
    };
    let version = output(Command::new("/usr/bin/spycraft").arg("--version"))?;
    if !version.starts_with("spycraft ") {
        bail!("/usr/bin/spycraft --version said {version:?}");
    }
    output(Command::new("/usr/bin/spycraft").args([
        "config",
        "--config",
        "/etc/spycraft/sensor.toml",
    ]))?;
    let unit = Path::new("/lib/systemd/system/spycraft@.service");
    if !unit.exists() && !Path::new("/usr/lib/systemd/system/spycraft@.service").exists() {
        bail!("the package installed no spycraft@.service");
    }
    let verified = output(
        Command::new("systemd-analyze")
            .args(["verify", "/lib/systemd/system/spycraft@sensor.service"]),
    )?;
    if verified.contains("spycraft@") {
        bail!("systemd-analyze verify: {verified}");
    }
    if !user_exists("spycraft") {
        bail!("the package made no spycraft user");
    }
    for dir in ["/var/lib/spycraft", "/var/log/spycraft"] {
        let owner = output(Command::new("stat").args(["-c", "%U", dir]))?;
        if owner.trim() != "spycraft" {
            bail!("{dir} belongs to {owner:?}, not spycraft");
        }
    }
    Ok(())
}

fn user_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .output()
        .is_ok_and(|o| o.status.success())
}
