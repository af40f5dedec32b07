// SPDX-License-Identifier: AGPL-3.0-or-later
//! `cargo xtask ingest [--calls N] [--batch N]`: the PostgreSQL ingest rate. Starts a
//! throwaway cluster (the test harness's), analyses the synthetic capture into it, and reports
//! records per second end to end, then again for delivering an already-filled spool (the
//! database side alone). It reports; it never fails on a time.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::synth;

/// The test harness's throwaway PostgreSQL cluster (`bench-web` uses it too).
#[path = "../../spycraft/tests/support/postgres.rs"]
#[allow(dead_code)]
pub mod cluster;

pub fn command(root: &Path, args: &[String]) -> Result<()> {
    let mut calls = 200_000u32;
    let mut batch = 1000usize;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--calls" => calls = it.next().context("--calls N")?.parse()?,
            "--batch" => batch = it.next().context("--batch N")?.parse()?,
            other => bail!("ingest: unknown argument {other}"),
        }
    }
    crate::build_release(&[])?;
    let capture = root.join(format!("target/bench/synth-{}k.pcap", calls / 1000));
    if !capture.is_file() {
        synth::generate(calls, &capture)?;
    }
    let spycraft = root.join("target/release/spycraft");
    let pg = cluster::Cluster::start();
    let conn = pg.create_db("cdr");
    let spool = root.join("target/bench/ingest-spool");
    let _ = std::fs::remove_dir_all(&spool);
    let batch_arg = batch.to_string();
    let analyze = |extra: &[&str]| -> Result<f64> {
        let started = Instant::now();
        let out = Command::new(&spycraft)
            .args(["analyze", "--postgres", &conn, "--batch-size", &batch_arg])
            .arg("--spool")
            .arg(&spool)
            .args(extra)
            .arg(&capture)
            .output()?;
        if !out.status.success() && out.status.code() != Some(4) {
            bail!("spycraft: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(started.elapsed().as_secs_f64())
    };
    let count = |pg: &cluster::Cluster| -> Result<u64> {
        Ok(pg.psql("cdr", "SELECT count(*) FROM cdr").parse()?)
    };

    println!(
        "capture: {} ({calls} calls), batch size {batch}",
        capture.display()
    );
    let wall = analyze(&[])?;
    let records = count(&pg)?;
    println!(
        "end to end (analyse + spool + deliver): {records} records in {wall:.2} s = {:.0} records/s",
        records as f64 / wall
    );

    // The database side alone: fill the spool with the server down, then time the flush.
    pg.psql("cdr", "TRUNCATE cdr");
    pg.pause();
    analyze(&["--drain-timeout", "0"])?;
    pg.resume();
    let started = Instant::now();
    let out = Command::new(&spycraft)
        .args([
            "db",
            "flush",
            "--postgres",
            &conn,
            "--batch-size",
            &batch_arg,
        ])
        .arg("--spool")
        .arg(&spool)
        .output()?;
    let flush = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("db flush: {}", String::from_utf8_lossy(&out.stderr));
    }
    let records = count(&pg)?;
    println!(
        "delivery of a full spool (db flush):     {records} records in {flush:.2} s = {:.0} records/s",
        records as f64 / flush
    );
    Ok(())
}
