// SPDX-License-Identifier: AGPL-3.0-or-later
//! The `spycraft` command line: parse, resolve the settings once, run the command, exit with
//! the status its outcome calls for.

mod analyze;
mod args;
mod capture;
mod db;
mod dump;
mod expect;
mod filter;
mod inspect;
mod notify;
mod outcome;
mod record;
mod reload;
mod serve;
mod service;
mod stop;

use std::process::ExitCode;

use clap::Parser;
use spycraft::settings::{self, Layer, Settings};

use args::{Cli, Command};
use outcome::{Usage, EXIT_FAILED, EXIT_USAGE};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        // The reader of standard output has gone (`| head`): stop quietly, as Unix tools do.
        Err(e) if reader_gone(&e) => ExitCode::SUCCESS,
        Err(e) if e.is::<Usage>() => {
            eprintln!("spycraft: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!("spycraft: {}", spycraft::error_chain(e));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn run(mut cli: Cli) -> anyhow::Result<ExitCode> {
    let file = match &cli.config {
        Some(path) => settings::load(path)?,
        None => Layer::default(),
    };
    let flags = cli.command.take_settings();
    let settings = Settings::resolve(flags.clone(), file);
    match cli.command {
        Command::Analyze(args) => analyze::run(args, &settings),
        Command::Capture(_) => capture::run(&settings, cli.config, flags),
        Command::Config(_) => {
            print!("{}", settings.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Filter(args) => filter::run(&args, &settings),
        Command::Db(command) => db::run(&command, &settings),
        Command::Dump(args) => dump::run(args, &settings),
        Command::Find(args) => inspect::find(&args, &settings),
        Command::Stats(args) => inspect::stats(&args, &settings),
        Command::Diff(args) => expect::diff(&args, &settings),
        Command::Serve(args) => serve::run(args, &settings),
    }
}

/// Whether `error` comes from writing to a pipe whose reader has closed it.
fn reader_gone(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
