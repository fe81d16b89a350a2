//! The one error type of the marketplace: every rejection a rule can make, plus the
//! failures the adapters report through the ports.

use crate::{Address, Amount, TaskId, TaskStatus};

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way an action or a port call can fail. Messages are lowercase, say what was
/// wrong and, where it helps, what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("insufficient funds: {needed} FLOWNET needed, {available} FLOWNET available")]
    InsufficientFunds { needed: Amount, available: Amount },
    #[error("the node's price {price} FLOWNET is above your max price {max_price} FLOWNET")]
    PriceAboveMax { price: Amount, max_price: Amount },
    #[error("wrong node: task {task} is addressed to node {node}")]
    WrongNode { task: TaskId, node: Address },
    #[error("not allowed: {0}")]
    Unauthorized(String),
    #[error("deadline passed: {0}")]
    DeadlinePassed(String),
    #[error("deadline not passed: {0}")]
    DeadlineNotPassed(String),
    #[error("already rated: {rater} has already rated task {task}")]
    AlreadyRated { task: TaskId, rater: Address },
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("faucet: {0}")]
    Faucet(String),
    #[error("bad signature: the envelope is not signed by the key registered for {0}")]
    BadSignature(Address),
    #[error(
        "bad sequence number for {address}: expected {expected}, got {got} (replayed or out-of-order envelope)"
    )]
    BadSequence {
        address: Address,
        expected: u64,
        got: u64,
    },
    #[error("prompt too large: {size} bytes, at most {max} allowed")]
    PromptTooLarge { size: usize, max: usize },
    #[error("params too large: {size} bytes, at most {max} allowed")]
    ParamsTooLarge { size: usize, max: usize },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("task {task} is {status}: cannot {action}")]
    InvalidState {
        task: TaskId,
        status: TaskStatus,
        action: &'static str,
    },
    #[error("node {0} is not active")]
    NodeInactive(Address),
    #[error("node {node} does not offer model {model}")]
    ModelNotOffered { node: Address, model: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("amount overflow")]
    Overflow,
    #[error("storage: {0}")]
    Storage(String),
    #[error("inference: {0}")]
    Inference(String),
    #[error("blob store: {0}")]
    Blob(String),
    #[error("network: {0}")]
    Network(String),
}

/// The kind of an [`Error`], for frontends that map kinds to their own types (Python
/// exception classes, HTTP status codes, process exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum ErrorKind {
    InsufficientFunds,
    PriceAboveMax,
    WrongNode,
    Unauthorized,
    DeadlinePassed,
    DeadlineNotPassed,
    AlreadyRated,
    AlreadyExists,
    Faucet,
    BadSignature,
    BadSequence,
    PromptTooLarge,
    ParamsTooLarge,
    NotFound,
    InvalidState,
    NodeInactive,
    ModelNotOffered,
    InvalidInput,
    Overflow,
    Storage,
    Inference,
    Blob,
    Network,
}

impl Error {
    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InsufficientFunds { .. } => ErrorKind::InsufficientFunds,
            Self::PriceAboveMax { .. } => ErrorKind::PriceAboveMax,
            Self::WrongNode { .. } => ErrorKind::WrongNode,
            Self::Unauthorized(_) => ErrorKind::Unauthorized,
            Self::DeadlinePassed(_) => ErrorKind::DeadlinePassed,
            Self::DeadlineNotPassed(_) => ErrorKind::DeadlineNotPassed,
            Self::AlreadyRated { .. } => ErrorKind::AlreadyRated,
            Self::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Self::Faucet(_) => ErrorKind::Faucet,
            Self::BadSignature(_) => ErrorKind::BadSignature,
            Self::BadSequence { .. } => ErrorKind::BadSequence,
            Self::PromptTooLarge { .. } => ErrorKind::PromptTooLarge,
            Self::ParamsTooLarge { .. } => ErrorKind::ParamsTooLarge,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::InvalidState { .. } => ErrorKind::InvalidState,
            Self::NodeInactive(_) => ErrorKind::NodeInactive,
            Self::ModelNotOffered { .. } => ErrorKind::ModelNotOffered,
            Self::InvalidInput(_) => ErrorKind::InvalidInput,
            Self::Overflow => ErrorKind::Overflow,
            Self::Storage(_) => ErrorKind::Storage,
            Self::Inference(_) => ErrorKind::Inference,
            Self::Blob(_) => ErrorKind::Blob,
            Self::Network(_) => ErrorKind::Network,
        }
    }

    /// Whether the error is a rule's rejection of an action (as opposed to a failure of
    /// storage, inference or the network).
    pub fn is_rejection(&self) -> bool {
        !matches!(
            self.kind(),
            ErrorKind::Storage | ErrorKind::Inference | ErrorKind::Blob | ErrorKind::Network
        )
    }
}
