use serde::Serialize;

/// Errors of the chain adapters before they reach the core's error kinds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("corrupt ledger record: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("{0}")]
    Ledger(String),
    /// The ledger file's rows or head are not what its log says: it was edited outside
    /// the ledger's code. Opening refuses it.
    #[error("ledger state does not match its log ({0}): run `flownet ledger verify` to find where")]
    Tampered(String),
    /// What `EmbeddedLedger::verify` found first (`VerifyReport::into_result`).
    #[error("ledger state does not match its log: {0}")]
    Mismatch(Box<Mismatch>),
}

/// Result with the chain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for flownet_core::Error {
    fn from(e: Error) -> Self {
        flownet_core::Error::Storage(e.to_string())
    }
}

/// The first place where a ledger file disagrees with the replay of its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "at", rename_all = "snake_case")]
pub enum Mismatch {
    /// Where the chain starts (the ledger's creation, or the migration of a file from
    /// before the chain): its record, or the state the log replays to there.
    Genesis { height: u64, reason: String },
    /// An envelope of the log, by its height in the feed and its stored columns.
    Envelope {
        height: u64,
        hash: String,
        signer: String,
        sequence: i64,
        action: String,
        reason: String,
    },
    /// The chain's head in meta, against the log's last envelope.
    Head { height: u64, reason: String },
    /// A row of the state that the log does not replay to (`None`: no such row).
    Row {
        table: String,
        key: String,
        stored: Option<Vec<String>>,
        replayed: Option<Vec<String>>,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn cells(row: &Option<Vec<String>>) -> String {
            match row {
                None => "no row".into(),
                Some(cells) => {
                    let all = cells.join(" | ");
                    match all.char_indices().nth(300) {
                        Some((cut, _)) => format!("{}…", &all[..cut]),
                        None => all,
                    }
                }
            }
        }
        match self {
            Self::Genesis { height, reason } => {
                write!(f, "the chain's start (height {height}): {reason}")
            }
            Self::Envelope {
                height,
                hash,
                signer,
                sequence,
                action,
                reason,
            } => write!(
                f,
                "envelope {height} ({action} by {signer}, sequence {sequence}, hash {hash}): {reason}"
            ),
            Self::Head { height, reason } => {
                write!(f, "the chain's head (height {height}): {reason}")
            }
            Self::Row {
                table,
                key,
                stored,
                replayed,
            } => write!(
                f,
                "{table} row {key} is not what the log replays to (stored: {}; replayed: {})",
                cells(stored),
                cells(replayed)
            ),
        }
    }
}
