// SPDX-License-Identifier: AGPL-3.0-or-later
//! `spycraft db`: migrations, status, delivering a spool.

use std::process::ExitCode;

use anyhow::Context;
use spycraft::settings::Settings;
use spycraft::sink::postgres::{self, PostgresError, PostgresSink};

use crate::args::DbCommand;
use crate::outcome::EXIT_UNDELIVERED;

pub fn run(command: &DbCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let Some(config) = settings.postgres(false).context("--postgres")? else {
        anyhow::bail!("no database: give --postgres URL (or url in [postgres] of --config)");
    };
    match command {
        DbCommand::Migrate(_) => {
            let applied = postgres::migrate(&config.target)?;
            if applied.is_empty() {
                println!("{}: schema up to date", config.target.describe());
            } else {
                println!(
                    "{}: applied migrations {applied:?}",
                    config.target.describe()
                );
            }
        }
        DbCommand::Status(_) => {
            print!("{}", postgres::status(&config.target, &config.spool.dir)?);
        }
        DbCommand::Flush(_) => {
            let mut sink = PostgresSink::start(config)?;
            match sink.close() {
                Ok(report) => println!(
                    "{} records delivered ({} new)",
                    report.delivered, report.inserted
                ),
                Err(e @ PostgresError::Undelivered { .. }) => {
                    eprintln!("spycraft: {e}");
                    return Ok(ExitCode::from(EXIT_UNDELIVERED));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
