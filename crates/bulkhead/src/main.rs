//! `bulkhead`: one binary that is both the server (`bulkhead up`) and the CLI that talks to
//! it. This file only parses arguments and hands over; the work lives in the crates.

mod cli;
mod up;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, Failure};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Up(args) => up::run(&cli, args).await,
            Command::Console => up::console(&cli),
            Command::Gateway(args) => up::gateway(&cli, args).await,
            Command::Version => {
                println!("bulkhead {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
            other => cli::run(&cli, other).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { message, code }) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}
