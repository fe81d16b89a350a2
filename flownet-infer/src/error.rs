//! The crate's error type and its conversion into core's error kinds.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way loading or running a model can fail. Messages are lowercase and say what
/// to do where that helps.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No runtime path was given and `ORT_DYLIB_PATH` is unset.
    #[error(
        "ONNX Runtime not found: set ORT_DYLIB_PATH to libonnxruntime.so.<version> \
         (scripts/setup.sh prints it)"
    )]
    RuntimeNotFound,
    /// The runtime library could not be loaded from `path`.
    #[error(
        "cannot load ONNX Runtime from {}: {reason}; set ORT_DYLIB_PATH to \
         libonnxruntime.so.<version> (scripts/setup.sh prints it)",
        path.display()
    )]
    RuntimeLoad { path: PathBuf, reason: String },
    /// ONNX Runtime reported an error while `context`.
    #[error("onnx runtime failed {context}: {source}")]
    Ort {
        context: String,
        #[source]
        source: ort::Error,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A manifest is malformed or inconsistent.
    #[error("bad model manifest {}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    /// A weights file's SHA-256 differs from its manifest's.
    #[error(
        "checksum mismatch for {}: the manifest expects sha256 {expected}, the file has {actual}; \
         re-run scripts/setup.sh to rebuild the models",
        path.display()
    )]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// No model with this id is loaded.
    #[error("model {0:?} is not loaded by this engine")]
    UnknownModel(String),
    /// The manifest's kind or tensors match none of the built-in pipelines.
    #[error("model {id:?} is not supported: {reason}")]
    Unsupported { id: String, reason: String },
    /// The request is wrong: a bad parameter, a missing or undecodable input.
    #[error("{0}")]
    InvalidInput(String),
    /// llama.cpp reported an error while `context`.
    #[error("llama.cpp failed {context}: {message}")]
    Llama { context: String, message: String },
    /// Whoever asked for a streamed run stopped listening, so the run stopped.
    #[error("the run was cancelled: nobody is waiting for its output any more")]
    Cancelled,
    /// The model ran but its output is not what the pipeline expects, or encoding it
    /// failed.
    #[error("{0}")]
    Output(String),
    /// The phonemizer (the espeak-ng binary) could not be run or failed.
    #[error("{0}")]
    Phonemizer(String),
}

impl Error {
    /// Wraps an `ort` error, saying what the engine was doing. Builder errors carry the
    /// builder (and are not `Send`), so they go through `ort::Error::from` first.
    pub(crate) fn ort<R>(context: impl Into<String>) -> impl FnOnce(ort::Error<R>) -> Self
    where
        ort::Error: From<ort::Error<R>>,
    {
        let context = context.into();
        move |e| Self::Ort {
            context,
            source: ort::Error::from(e),
        }
    }

    /// Wraps a llama.cpp error, saying what the engine was doing.
    pub(crate) fn llama(context: impl Into<String>, error: impl std::fmt::Display) -> Self {
        Self::Llama {
            context: context.into(),
            message: error.to_string(),
        }
    }

    pub(crate) fn manifest(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Manifest {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<Error> for flownet_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidInput(msg) => Self::InvalidInput(msg),
            Error::UnknownModel(id) => Self::NotFound(format!("model {id:?}")),
            other => Self::Inference(other.to_string()),
        }
    }
}
