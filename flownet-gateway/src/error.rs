//! The crate's error type and its conversion into core's error kinds. (Answers to HTTP
//! clients are [`crate::api_error::ApiError`]; this is what the library's own calls
//! return.)

use flownet_core::ErrorKind;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way setting up or running the gateway, its API keys or the sponsor service
/// can fail. Messages are lowercase and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger refused (core's error kinds).
    #[error(transparent)]
    Core(#[from] flownet_core::Error),
    /// The ledger refused while the gateway was doing `context`.
    #[error("{context}: {error}")]
    Ledger {
        context: &'static str,
        error: flownet_core::Error,
    },
    /// The Flow client failed.
    #[cfg(feature = "flow")]
    #[error(transparent)]
    Flow(#[from] flownet_chain::flow::FlowError),
    /// A file or socket failed while `context`.
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
    /// Something given to the gateway is not what it takes (a file, a request, a
    /// service's answer, a limit).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The core error kind behind this error, where there is one (frontends map it to
    /// exit codes, exceptions and HTTP answers).
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Core(e) | Self::Ledger { error: e, .. } => Some(e.kind()),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |error| Self::Io { context, error }
    }
}
