//! The `flownet` command, as a library: [`run`] parses arguments, builds the runtime and
//! calls one command. The binary and the Python package's console script both call it,
//! so they are the same program.
//!
//! It is glue: it parses, reads the data dir and its key files ([`context`],
//! [`config`]), calls one library per verb (`flownet-node` to run a node,
//! `flownet-gateway` for `web` and `sponsor`, the core's `Wallet` for the rest) and
//! prints the result as text or `--json`.
//!
//! ## Feature Flags
//! - `cuda`: lets `node serve --cuda` and `demo --cuda` run models on ONNX Runtime's
//!   CUDA execution provider.
//! - `flow`: `--network emulator|testnet|mainnet` runs every verb on FlowNet's Flow
//!   contracts through `flownet_chain::flow::FlowLedger`, and adds `flow deploy`.
//!
//! ## Example
//! ```no_run
//! // Prints the version, exactly as `flownet --version` does.
//! let code = flownet_cli::run(["flownet", "--version"]);
//! assert_eq!(code, 0);
//! ```

mod commands;
pub mod config;
pub mod context;
#[cfg(feature = "flow")]
pub mod flow;
pub mod hooks;

use std::{ffi::OsString, path::PathBuf};

use clap::{CommandFactory as _, FromArgMatches as _, Parser};

pub use commands::{
    Command, Holder, SubmitReq, Submitted, conversation_prompt, hold_until_settled, input_label,
    node_json, pick_node, submit,
};
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
    /// Which key in the data dir signs (several keys can share one data dir) [default:
    /// the data dir's config.json, else "default"]
    #[arg(long, global = true, env = "FLOWNET_KEY", value_name = "NAME")]
    pub key: Option<String>,
    /// Where the model manifests and weights are [default: the data dir's config.json,
    /// else ./models]
    #[arg(long, global = true, env = "FLOWNET_MODELS", value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Which ledger: the data dir's embedded one, or FlowNet on a Flow network
    /// (emulator, testnet, mainnet; needs the `flow` build)
    #[arg(
        long,
        global = true,
        env = "FLOWNET_NETWORK",
        value_enum,
        default_value = "embedded"
    )]
    pub network: context::Network,
    /// The embedded ledger's file [default: <data dir>/ledger.db]: data dirs that share
    /// no other file (separate keys and blob stores, as on two machines) can reach one
    /// ledger through it
    #[arg(long, global = true, env = "FLOWNET_LEDGER", value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// Fetch outputs and streams from nodes on loopback and private addresses, for this
    /// command and a gateway it serves (the embedded ledger and the emulator allow
    /// loopback anyway; testnet and mainnet only public addresses)
    #[arg(long, global = true, env = "FLOWNET_ALLOW_PRIVATE_ENDPOINTS")]
    pub allow_private_endpoints: bool,
    /// An IPFS node's HTTP RPC API (kubo's, e.g. http://127.0.0.1:5001 or
    /// /ip4/127.0.0.1/tcp/5001): blobs this command stores are added there, pinned, and
    /// outputs and inputs their holder does not deliver are read from there by CID
    #[arg(long, global = true, env = "FLOWNET_IPFS_API", value_name = "URL")]
    pub ipfs_api: Option<String>,
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
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let parsed = Cli::command()
        .version(hooks::version())
        .try_get_matches_from(argv.clone())
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            // A script asked for JSON: a usage error is one JSON object on stdout too.
            if e.use_stderr() && argv_wants_json(&argv) {
                let message = e.render().to_string();
                let message = message.trim().trim_start_matches("error: ");
                println!(
                    "{}",
                    serde_json::json!({ "error": { "kind": "invalid_input", "usage": true, "message": message } })
                );
            }
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    init_logging(cli.verbose, cli.command.is_long_running());
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(context::default_data_dir);
    let config = match config::Config::load(&data_dir) {
        Ok(c) => c,
        Err(e) => return report_error(cli.json, &e),
    };
    let ctx = Ctx {
        key_name: cli
            .key
            .clone()
            .or_else(|| config.as_ref().map(|c| c.key.clone()))
            .unwrap_or_else(|| "default".into()),
        models_dir: cli
            .models_dir
            .clone()
            .or_else(|| config.as_ref().and_then(|c| c.models_dir.clone()))
            .unwrap_or_else(flownet_infer::default_models_dir),
        data_dir,
        json: cli.json,
        network: cli.network,
        ledger_file: cli.ledger.clone(),
        allow_private_endpoints: cli.allow_private_endpoints,
        ipfs: match cli
            .ipfs_api
            .as_deref()
            .map(flownet_node::Ipfs::new)
            .transpose()
        {
            Ok(ipfs) => ipfs,
            Err(e) => return report_error(cli.json, &e.into()),
        },
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
        Err(e) => report_error(ctx.json, &e),
    }
}

/// Whether `--json` is among the arguments (before a `--`), for errors met before
/// the arguments could be parsed.
fn argv_wants_json(argv: &[OsString]) -> bool {
    argv.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// Prints an error (also as JSON on stdout with `--json`) and returns exit code 1.
/// Every JSON error has a kind: the core's when one is behind it, else `other`.
fn report_error(json: bool, e: &anyhow::Error) -> i32 {
    if json {
        let kind = error_kind(e).map_or_else(
            || serde_json::json!("other"),
            |k| serde_json::to_value(k).unwrap_or_else(|_| serde_json::json!("other")),
        );
        let mut error = serde_json::json!({ "kind": kind, "message": format!("{e:#}") });
        // A ledger file that disagrees with its log: where, for scripts.
        if let Some(flownet_chain::Error::Mismatch(m)) = e.downcast_ref() {
            error["mismatch"] = serde_json::to_value(m).unwrap_or_default();
        }
        println!("{}", serde_json::json!({ "error": error }));
    }
    eprintln!("error: {e:#}");
    1
}

/// The core error kind behind `e`, whichever library returned it.
pub fn error_kind(e: &anyhow::Error) -> Option<flownet_core::ErrorKind> {
    if let Some(c) = e.downcast_ref::<flownet_core::Error>() {
        return Some(c.kind());
    }
    if let Some(n) = e.downcast_ref::<flownet_node::Error>() {
        return n.kind();
    }
    if let Some(flownet_chain::Error::Tampered(_) | flownet_chain::Error::Mismatch(_)) =
        e.downcast_ref()
    {
        return Some(flownet_core::ErrorKind::Storage);
    }
    e.downcast_ref::<flownet_gateway::Error>()
        .and_then(flownet_gateway::Error::kind)
}

/// Sends logs to stderr: warnings by default, progress too for long-running commands
/// (`-v` info, `-vv` debug; `RUST_LOG` overrides). Later calls change nothing.
pub fn init_logging(verbose: u8, long_running: bool) {
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
