//! `bulkhead up`: logging, configuration, then the server crate; prints where things listen.

use std::io::Write;

use bulkhead_server::{up, Config, UpOptions};

use crate::cli::{Cli, Failure, GatewayArgs, UpArgs};

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BULKHEAD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

pub(crate) async fn run(cli: &Cli, args: &UpArgs) -> Result<(), Failure> {
    init_logging();
    let mut config = Config::load(args.config.as_deref()).map_err(Failure::startup)?;
    if let Some(listen) = args.api_listen {
        config.api.listen = listen.to_string();
    }
    if let Some(listen) = args.gateway_listen {
        config.gateway.listen = listen.to_string();
    }
    let opts = UpOptions {
        data_dir: cli.data_dir.clone(),
        config,
    };
    up(opts, |ready| {
        let postgres = match &ready.embedded_postgres {
            Some((addr, data)) => format!("{addr} (embedded, data in {})", data.display()),
            None => "configured servers".to_string(),
        };
        say(&format!(
            "Bulkhead {} is up\n  data folder   {}\n  PostgreSQL    {postgres}\n  gateway       {}  (PostgreSQL protocol; database = service, password = tenant key or token)\n  HTTP API      {}  (token in {}/instance.json)\n  console       {}/  (sign-in tokens: `bulkhead console`)\n  clusters      {}\nStop with Ctrl-C.",
            env!("CARGO_PKG_VERSION"),
            ready.data_dir.display(),
            ready.gateway,
            ready.api_url,
            ready.data_dir.display(),
            ready.api_url,
            ready.clusters.join(", ")
        ));
    })
    .await
    .map_err(Failure::startup)?;
    say("Bulkhead stopped.");
    Ok(())
}

/// Prints a line for the operator. A closed stdout (`bulkhead up | head`) must not stop the
/// server, so write errors are ignored.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// `bulkhead console`: the running instance's console address and its sign-in tokens.
pub(crate) fn console(cli: &Cli) -> Result<(), Failure> {
    let instance = bulkhead_server::Instance::read(&cli.data_dir)
        .map_err(|e| Failure::new(crate::cli::exit::INTERNAL, e.to_string()))?
        .ok_or_else(|| {
            Failure::new(
                crate::cli::exit::UNREACHABLE,
                format!(
                    "no running Bulkhead in {} (start it with `bulkhead up`)",
                    cli.data_dir.display()
                ),
            )
        })?;
    let read_only = instance
        .console_token
        .unwrap_or_else(|| "(none: this instance predates console tokens; restart it)".into());
    if cli.json {
        println!(
            "{}",
            serde_json::json!({ "url": format!("{}/", instance.api_url), "read_only_token": read_only })
        );
        return Ok(());
    }
    say(&format!(
        "console          {}/\nread-only token  {read_only}\n                 (sees every page, changes nothing)\nadmin token      the API token, in {}\n                 (every action, like the CLI)",
        instance.api_url,
        bulkhead_server::Instance::path(&cli.data_dir).display()
    ));
    Ok(())
}

/// `bulkhead gateway`: one more gateway against a running installation's directory.
pub(crate) async fn gateway(cli: &Cli, args: &GatewayArgs) -> Result<(), Failure> {
    init_logging();
    let mut config = Config::load(args.config.as_deref()).map_err(Failure::startup)?;
    if let Some(listen) = args.listen {
        config.gateway.listen = listen.to_string();
    }
    let control_dsn = match &args.control {
        Some(dsn) => dsn.clone(),
        None => bulkhead_server::Instance::read(&cli.data_dir)
            .map_err(|e| Failure::new(crate::cli::exit::INTERNAL, e.to_string()))?
            .map(|i| i.control_dsn)
            .ok_or_else(|| {
                Failure::new(
                    crate::cli::exit::UNREACHABLE,
                    format!(
                        "no running Bulkhead in {} to take the control database from: give --control DSN",
                        cli.data_dir.display()
                    ),
                )
            })?,
    };
    let opts = bulkhead_server::GatewayOptions {
        control_dsn,
        secrets_dir: args
            .secrets
            .clone()
            .unwrap_or_else(|| cli.data_dir.join("secrets")),
        config,
    };
    bulkhead_server::gateway(opts, |addr| {
        say(&format!(
            "Bulkhead {} gateway is up\n  gateway       {addr}  (PostgreSQL protocol; database = service, password = tenant key or token)\nStop with Ctrl-C.",
            env!("CARGO_PKG_VERSION")
        ));
    })
    .await
    .map_err(Failure::startup)?;
    say("Bulkhead gateway stopped.");
    Ok(())
}
