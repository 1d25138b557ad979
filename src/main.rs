//! The `sipacd` binary: parses the command line and wires the library
//! together. Errors get their context here, at the edge.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use sipacd::cli;

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
    /// Print queues and agents of a running daemon.
    Status(AdminArgs),
    /// Ask a running daemon to reload its configuration.
    Reload(AdminArgs),
    /// Print call figures per queue and agent from the call records.
    Report {
        /// Start of the period (e.g. `yesterday`, `2026-05-01 08:00`).
        #[arg(long)]
        since: Option<String>,
        /// End of the period, exclusive.
        #[arg(long)]
        until: Option<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// One row per hour or day.
        #[arg(long, value_enum)]
        by: Option<By>,
        /// First-contact resolution: a caller whose number does not call
        /// again within this many hours counts as resolved.
        #[arg(long, default_value_t = 24)]
        fcr_window_h: u32,
        /// Print the report as JSON (the same figures, every field named).
        #[arg(long)]
        json: bool,
    },
    /// Coverage gaps and staffing per queue and interval of the coming weeks.
    Plan {
        /// Weeks ahead, from --from (default today in each queue's zone).
        #[arg(long, default_value_t = 1)]
        weeks: u32,
        /// Interval length in minutes: 15, 30 or 60.
        #[arg(long, default_value_t = 30)]
        interval: u32,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// First date (YYYY-MM-DD), in each queue's zone.
        #[arg(long)]
        from: Option<String>,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Weeks of call records (in data_dir) the demand is read from; 0: none.
        #[arg(long, default_value_t = 4)]
        history_weeks: u32,
        /// Share of scheduled time agents are not on the phones (0 to 0.95).
        #[arg(long, default_value_t = 0.0)]
        shrinkage: f64,
    },
    /// Replay recorded calls through the router with --config's agents,
    /// shifts, skills and strategies, and compare with what happened.
    Replay {
        /// Start of the period (e.g. `2026-05-01`, `2026-05-01 08:00`).
        #[arg(long)]
        since: String,
        /// End of the period, exclusive.
        #[arg(long)]
        until: String,
        /// Call records to replay: a data_dir; default --config's data_dir.
        #[arg(long)]
        records: Option<PathBuf>,
        /// Seed for callers' patience and the `random` strategy.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds an agent's phone rings before it answers.
        #[arg(long, default_value_t = 0)]
        answer_s: u64,
        #[arg(long, value_enum, default_value_t = ReplayFormat::Text)]
        format: ReplayFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanFormat {
    Text,
    Csv,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReplayFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct AdminArgs {
    /// Admin API (`http://HOST:PORT`); default: `server.admin` of --config.
    /// The token comes from $SIPACD_ADMIN_TOKEN.
    #[arg(long)]
    admin: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum By {
    Hour,
    Day,
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
        Command::Status(a) => admin(&cli.config, &a, |api| async move {
            Ok((api.status().await?, true))
        }),
        Command::Reload(a) => admin(&cli.config, &a, |api| async move {
            let r = api.reload().await?;
            let applied = matches!(r, cli::ReloadResult::Applied(_));
            Ok((cli::render_reload(&r), applied))
        }),
        Command::Report {
            since,
            until,
            queue,
            by,
            fcr_window_h,
            json,
        } => {
            let args = cli::ReportArgs {
                since,
                until,
                queue,
                fcr_window_h: Some(fcr_window_h),
                json,
                by: by.map(|b| match b {
                    By::Hour => sipacd::cdr::Bucket::Hour,
                    By::Day => sipacd::cdr::Bucket::Day,
                }),
            };
            print_or_fail(cli::report(&cli.config, &args).map(|t| (t, true)))
        }
        Command::Plan {
            weeks,
            interval,
            queue,
            from,
            format,
            history_weeks,
            shrinkage,
        } => {
            let args = cli::PlanArgs {
                weeks,
                interval,
                queue,
                from,
                format: match format {
                    PlanFormat::Text => sipacd::plan::render::Format::Text,
                    PlanFormat::Csv => sipacd::plan::render::Format::Csv,
                    PlanFormat::Json => sipacd::plan::render::Format::Json,
                },
                history_weeks,
                shrinkage,
            };
            print_or_fail(cli::plan(&cli.config, &args).map(|t| (t, true)))
        }
        Command::Replay {
            since,
            until,
            records,
            seed,
            answer_s,
            format,
        } => {
            let args = cli::ReplayArgs {
                since,
                until,
                records,
                seed,
                answer_s,
                json: matches!(format, ReplayFormat::Json),
            };
            print_or_fail(cli::replay(&cli.config, &args).map(|t| (t, true)))
        }
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
        Ok(cfg) => {
            // Warnings go to stderr: stdout stays `ok` (the contract).
            for w in cli::check_warnings(&cfg) {
                eprintln!("{w}");
            }
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

/// Runs one admin API request; prints its text, exits 1 if `f` says so.
fn admin<F, Fut>(config: &std::path::Path, args: &AdminArgs, f: F) -> ExitCode
where
    F: FnOnce(cli::Admin) -> Fut,
    Fut: std::future::Future<Output = Result<(String, bool), cli::CliError>>,
{
    let res = cli::admin_url(args.admin.as_deref(), config).and_then(|url| {
        let token = std::env::var(cli::TOKEN_ENV).ok();
        cli::block_on(f(cli::Admin::new(url, token)))
    });
    print_or_fail(res)
}

fn print_or_fail(res: Result<(String, bool), cli::CliError>) -> ExitCode {
    match res {
        Ok((text, ok)) => {
            print!("{text}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("sipacd: {e}");
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
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sipacd::logging::EscapedStderr { ansi })
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
