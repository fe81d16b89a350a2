//! The `flownet` command, as a library: [`run`] parses arguments, builds the runtime and
//! calls one command. The binary and the Python package's console script both call it,
//! so they are the same program.
//!
//! ## Feature Flags
//! - `cuda`: lets `node serve --cuda` and `demo --cuda` run models on ONNX Runtime's
//!   CUDA execution provider.
//!
//! ## Example
//! ```no_run
//! // Prints the version, exactly as `flownet --version` does.
//! let code = flownet_cli::run(["flownet", "--version"]);
//! assert_eq!(code, 0);
//! ```

pub mod blobs;
mod commands;
pub mod context;
pub mod serve;
pub mod web;

use std::{ffi::OsString, path::PathBuf};

use clap::Parser;

pub use commands::Command;
use context::Ctx;

/// FlowNet: a decentralized AI-inference marketplace. Pay for a prompt, a node runs the
/// model, the output's hash goes on the ledger and you rate it.
#[derive(Debug, Parser)]
#[command(
    name = "flownet",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Where the ledger, keys and blobs live [default: ~/.flownet]
    #[arg(long, global = true, env = "FLOWNET_HOME", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Which key in the data dir signs (several keys can share one data dir)
    #[arg(
        long,
        global = true,
        env = "FLOWNET_KEY",
        default_value = "default",
        value_name = "NAME"
    )]
    pub key: String,
    /// Where the model manifests and weights are [default: ./models]
    #[arg(long, global = true, env = "FLOWNET_MODELS", value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Print results as JSON on stdout (logs stay on stderr)
    #[arg(long, global = true)]
    pub json: bool,
    /// More logs on stderr (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Runs the `flownet` command line `argv` (program name first) and returns the process
/// exit code: 0 on success, 1 on an error, 2 on a usage error.
pub fn run<I, T>(argv: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    init_logging(cli.verbose, cli.command.is_long_running());
    let ctx = Ctx {
        data_dir: cli
            .data_dir
            .clone()
            .unwrap_or_else(context::default_data_dir),
        key_name: cli.key.clone(),
        models_dir: cli
            .models_dir
            .clone()
            .unwrap_or_else(flownet_infer::default_models_dir),
        json: cli.json,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(commands::dispatch(&ctx, cli.command)) {
        Ok(()) => 0,
        Err(e) => {
            if ctx.json {
                let kind = e.downcast_ref::<flownet_core::Error>().map(|c| c.kind());
                let json =
                    serde_json::json!({ "error": { "kind": kind, "message": format!("{e:#}") } });
                println!("{json}");
            }
            eprintln!("error: {e:#}");
            1
        }
    }
}

fn init_logging(verbose: u8, long_running: bool) {
    let default = match (verbose, long_running) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,flownet={default},flownet_cli={default},flownet_infer={default}"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
