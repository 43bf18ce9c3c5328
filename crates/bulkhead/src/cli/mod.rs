//! The command line: argument definitions and dispatch of the directory verbs to the API.

mod args;
mod backups;
mod client;
mod commands;
mod ledger;
mod migrate;
mod moves;
mod output;
mod pitr;
mod proof;

pub(crate) use args::{Cli, Command, GatewayArgs, UpArgs};
pub(crate) use client::{exit, Failure};

/// Runs a directory verb against the running instance.
pub(crate) async fn run(cli: &Cli, command: &Command) -> Result<(), Failure> {
    let api = client::ApiClient::resolve(cli)?;
    commands::dispatch(&api, cli.json, command).await
}
