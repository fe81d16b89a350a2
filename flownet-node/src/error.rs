//! The crate's error type and its conversion into core's error kinds.

use std::{net::SocketAddr, path::PathBuf};

use flownet_core::{Address, ErrorKind};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way running a node can fail. Messages are lowercase and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger, the blob store or the worker refused (core's error kinds).
    #[error(transparent)]
    Core(#[from] flownet_core::Error),
    /// A model manifest is unreadable or inconsistent.
    #[error(transparent)]
    Inference(#[from] flownet_infer::Error),
    /// The models dir could not be read.
    #[error("reading the models dir {} (run scripts/setup.sh to prepare the models): {error}", dir.display())]
    ModelsDir {
        dir: PathBuf,
        error: flownet_infer::Error,
    },
    /// The models could not be loaded.
    #[error("loading the models in {}: {error}", dir.display())]
    LoadModels {
        dir: PathBuf,
        error: flownet_infer::Error,
    },
    /// The output server could not listen.
    #[error("binding {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    /// No listen address follows from the node's endpoint.
    #[error("{0}")]
    Endpoint(String),
    /// The wallet's account has no node on the ledger.
    #[error("{0} has no node: register one first with `flownet node register`")]
    NoNode(Address),
    /// The wallet's account has no node and no name was given to register one.
    #[error("{0} has no node yet: give it a name to register it")]
    NoName(Address),
    /// The ledger did not return the node just registered.
    #[error("the node vanished after registering")]
    Vanished,
    /// A blocking task of the runtime panicked or was cancelled.
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    /// The core error kind behind this error, where there is one (frontends map it to
    /// exit codes, exceptions and HTTP answers).
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Core(e) => Some(e.kind()),
            _ => None,
        }
    }
}
