/// Errors of the chain adapters before they reach the core's error kinds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("corrupt ledger record: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("{0}")]
    Ledger(String),
}

/// Result with the chain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for flownet_core::Error {
    fn from(e: Error) -> Self {
        flownet_core::Error::Storage(e.to_string())
    }
}
