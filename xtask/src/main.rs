// SPDX-License-Identifier: AGPL-3.0-or-later
//! Project chores: `cargo xtask <command>`.
//!
//! - `setup`   install what building and testing need (Debian packages, the rust-src
//!   component, bpf-linker for the kernel programs), if missing
//! - `demo`    analyse the bundled captures in `pcaps/` and print their call records
//!   (`--web`: serve them on http://127.0.0.1:8080 instead)
//! - `test`    setup, then `cargo fmt --check`, clippy with `-D warnings`, and every test
//! - `pcaps`   regenerate `pcaps/<case>/` with sipp on loopback (needs root for tcpdump)
//! - `synth`   write a large deterministic synthetic capture (see `synth.rs`)
//! - `bench`   time `spycraft analyze` on the synthetic capture against a floor program
//! - `capbench` the live capture modes (xdp, socket, pcap) on a replayed capture: SIP
//!   messages lost and the sensor's CPU per frame (root)
//! - `floor`   the floor program itself, on one capture
//! - `ingest`  the PostgreSQL ingest rate, on a throwaway cluster
//! - `bench-web` web search latency, in memory and in PostgreSQL
//! - `fuzz`    run the cargo-fuzz targets (nightly), seeded from the captures

mod bench;
mod benchweb;
mod capbench;
mod deb;
mod fuzz;
mod ingest;
mod pcaps;
mod synth;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// What `cargo xtask help` (or `--help` anywhere) prints.
const USAGE: &str = "usage: cargo xtask <command> [options]
  setup                      install the packages and tools the tests need
  demo [--web]               analyse every bundled capture and show its call records
                             (--web: serve them on http://127.0.0.1:8080)
  test                       run every test (root for the kernel and namespace tests)
  pcaps [CASE...]            regenerate bundled captures with sipp
  synth [--calls N] [--noise PERCENT] [--out FILE]
                             write a synthetic capture and its truth
  bench [--calls N] [--runs R]
                             time analyze against the floor, tshark and sngrep
  capbench [--calls N] [--noise PERCENT] [--http]
                             compare the live capture modes (root)
  floor FILE                 the hardware floor: walk a pcap, count message ends
  ingest [--calls N] [--batch N]
                             PostgreSQL ingest throughput
  bench-web [--memory-calls N] [--db-records N] [--queries Q]
                             web search latency in memory and in PostgreSQL
  fuzz [--seconds N] [TARGET...]
                             run the fuzz targets
  deb                        build the Debian package into target/debian";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "help") || args.iter().any(|a| a == "-h" || a == "--help")
    {
        println!("{USAGE}");
        return Ok(());
    }
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("setup") => {
            setup(&TEST_PACKAGES)?;
            setup_kernel_build()
        }
        Some("demo") if rest.iter().any(|a| a == "--web") => demo_web(),
        Some("demo") => demo(),
        Some("test") => test(),
        Some("pcaps") => {
            setup(&["sip-tester", "tcpdump", "kamailio"])?;
            pcaps::regenerate(&root(), rest)
        }
        Some("synth") => synth::command(rest),
        Some("fuzz") => fuzz::command(&root(), rest),
        Some("deb") => deb::build(&root()).map(drop),
        Some("bench") => bench::command(&root(), rest),
        Some("bench-web") => {
            setup(&["postgresql"])?;
            benchweb::command(&root(), rest)
        }
        Some("capbench") => capbench::command(&root(), rest),
        Some("ingest") => {
            setup(&TEST_PACKAGES)?;
            ingest::command(&root(), rest)
        }
        Some("floor") => bench::floor(Path::new(rest.first().map_or("", String::as_str))),
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown or missing command")
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Runs a command and fails with its name if it does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Debian packages every build and test needs.
const BASE_PACKAGES: [&str; 2] = ["libpcap-dev", "pkg-config"];

/// Installs the Debian packages that are missing (apt-get, as root), plus `extra`.
pub fn setup(extra: &[&str]) -> Result<()> {
    let missing: Vec<&str> = BASE_PACKAGES
        .iter()
        .chain(extra)
        .copied()
        .filter(|pkg| !installed(pkg))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "missing packages: {}; run as root or: sudo apt-get install -y {}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Debian's LLVM 22, which bpf-linker 0.13 links against (DESIGN.md's pins).
const KERNEL_BUILD_PACKAGES: [&str; 4] = [
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Whether the kernel programs can be built here: bpf-linker at the pinned version and the
/// toolchain's rust-src (for build-std).
fn kernel_build_ready() -> bool {
    let linker = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION));
    let rust_src = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("rust-src"));
    linker && rust_src
}

/// Installs what building the kernel programs needs: LLVM 22, the rust-src component and
/// bpf-linker built against that LLVM.
pub fn setup_kernel_build() -> Result<()> {
    setup(&KERNEL_BUILD_PACKAGES)?;
    if kernel_build_ready() {
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", "rust-src"]))?;
    eprintln!("xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (a few minutes)");
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--version",
            BPF_LINKER_VERSION,
        ])
        .args(["--no-default-features", "--features", "llvm-22"])
        .env("LLVM_SYS_221_PREFIX", "/usr/lib/llvm-22")
        .env("LLVM_PREFIX", "/usr/lib/llvm-22"))
}

/// Builds the release binary (and `also` packages). Commands that read files need no kernel
/// programs, so without their toolchain (`cargo xtask setup` installs it) the build leaves
/// them out.
pub fn build_release(also: &[&str]) -> Result<()> {
    let mut build = cargo();
    build.args(["build", "--release", "-q", "-p", "spycraft"]);
    for package in also {
        build.args(["-p", package]);
    }
    if !kernel_build_ready() {
        eprintln!("xtask: bpf-linker {BPF_LINKER_VERSION} or rust-src missing: building without the kernel programs (cargo xtask setup installs them)");
        build.arg("--no-default-features");
    }
    run(&mut build)
}

fn demo() -> Result<()> {
    setup(&[])?;
    build_release(&[])?;
    let binary = root().join("target/release/spycraft");
    for case in pcaps::bundled_cases(&root())? {
        let name = case.strip_prefix(root()).unwrap_or(&case);
        println!("\n== {} ({})", name.display(), pcaps::describe(&case));
        run(Command::new(&binary)
            .arg("analyze")
            .args(["--format", "table", "--node", "demo"])
            .arg(case.join("capture.pcap")))?;
    }
    Ok(())
}

/// `demo --web`: the bundled captures served on http://127.0.0.1:8080 until Ctrl-C.
fn demo_web() -> Result<()> {
    setup(&[])?;
    build_release(&[])?;
    let binary = root().join("target/release/spycraft");
    let captures: Vec<PathBuf> = pcaps::bundled_cases(&root())?
        .iter()
        .map(|case| case.join("capture.pcap"))
        .collect();
    println!("open http://127.0.0.1:8080/ (Ctrl-C stops it)");
    run(Command::new(&binary)
        .args(["serve", "--node", "demo"])
        .args(&captures))
}

/// What the tests need beyond the build: a PostgreSQL server for the database tests (they
/// start their own throwaway clusters), openssl for their TLS certificates, tshark to check
/// `dump`'s selections, chromium (and chromium-driver, its WebDriver) to render the call-flow
/// page and drive the web pages, sipp and tcpdump for the live
/// capture test, iproute2 (ip, tc) for its network namespaces, libcap2-bin (setcap) for the
/// least-privilege test, tcpreplay for the capture benchmark, prometheus (with promtool) to
/// scrape the sensor, systemd (systemd-analyze) to verify the unit in contrib/, sngrep to
/// receive HEP, kamailio (siptrace, sipcapture) to send and receive it.
const TEST_PACKAGES: [&str; 20] = [
    "sngrep",
    "kamailio",
    "freeradius",
    "prometheus",
    "python3-venv",
    "systemd",
    "postgresql",
    "openssl",
    "tshark",
    "chromium",
    "chromium-driver",
    "sip-tester",
    "tcpdump",
    "iproute2",
    "libcap2-bin",
    "tcpreplay",
    "libxml2-utils",
    "sipvicious",
    "sipsak",
    "fail2ban",
];

fn test() -> Result<()> {
    setup(&TEST_PACKAGES)?;
    setup_kernel_build()?;
    setup_schemathesis()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    // A short fuzzing smoke of every target (nightly); long runs: `cargo xtask fuzz --seconds N`.
    let nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if nightly || std::env::var("CI").as_deref() == Ok("true") {
        fuzz::command(&root(), &["--seconds".to_owned(), "20".to_owned()])?;
    } else {
        eprintln!("xtask: no nightly toolchain here, so no fuzzing smoke (CI always runs it)");
    }
    // spycraft-ebpf builds only for the BPF target, through spycraft's build script.
    run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "spycraft-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The offline build without the kernel side must keep working.
    run(cargo().args([
        "clippy",
        "-p",
        "spycraft",
        "--no-default-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    run_tests(cargo().args(["test", "--workspace", "--exclude", "spycraft-ebpf"]))?;
    // The package is installed into this machine: CI's, which is thrown away after, or a
    // developer's who runs the tests as root.
    if std::env::var("CI").as_deref() == Ok("true") {
        deb::check(&root())
    } else {
        eprintln!("xtask: the Debian package is installed and checked under CI=true only");
        Ok(())
    }
}

/// schemathesis (PyPI), pinned: the API fuzzing test runs it against the OpenAPI document.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Installs schemathesis into a virtual environment under `target/` unless it is there. On a
/// machine without PyPI the test that needs it is skipped, except under CI=true.
fn setup_schemathesis() -> Result<()> {
    let venv = root().join("target/schemathesis");
    if venv.join("bin/st").exists() {
        return Ok(());
    }
    eprintln!("xtask: installing {SCHEMATHESIS} into {}", venv.display());
    let installed = run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).and_then(|()| {
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SCHEMATHESIS,
        ]))
    });
    match installed {
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("xtask: no schemathesis ({e:#}); the API fuzzing test will be skipped");
            Ok(())
        }
        result => result,
    }
}

/// Runs cargo test, echoing its output, and closes with the totals over every test binary
/// (the last `test result:` line cargo prints is only the last binary's).
fn run_tests(cmd: &mut Command) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cargo test")?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in BufReader::new(child.stdout.take().context("piped stdout")?).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| {
                rest.split(';')
                    .find_map(|part| {
                        part.trim()
                            .strip_suffix(word)?
                            .trim()
                            .rsplit(' ')
                            .next()?
                            .parse::<u64>()
                            .ok()
                    })
                    .unwrap_or(0)
            };
            passed += count("passed");
            failed += count("failed");
            ignored += count("ignored");
        }
    }
    let status = child.wait()?;
    println!("\ntests: {passed} passed, {failed} failed, {ignored} skipped");
    if !status.success() {
        bail!("cargo test failed: {status}");
    }
    Ok(())
}
