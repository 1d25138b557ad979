//! The `sipacd` binary: parses the command line and wires the library
//! together. Errors get their context here, at the edge.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

const DEFAULT_CONFIG: &str = "config/sipacd.toml";

#[derive(Parser)]
#[command(
    name = "sipacd",
    version,
    about = "SIP automatic call distribution daemon"
)]
struct Cli {
    /// Configuration file (for running the daemon without a subcommand).
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (the default).
    Run,
    /// Validate the configuration and every file it names.
    Check,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => check(&cli.config),
        Command::Run => {
            init_logging(cli.log_format);
            match run(cli.config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("sipacd: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match sipacd::config::load(path) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(config: PathBuf) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(sipacd::daemon::run(config.clone()))
        .with_context(|| format!("running with {}", config.display()))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
