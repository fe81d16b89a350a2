//! The marketplace's records: accounts, nodes, tasks, ratings and output NFTs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Address, Amount, Digest32, HashAlgo, PublicKey};

/// Seconds since the Unix epoch, as the ledger's clock gives them (block time on Flow).
pub type Timestamp = u64;
/// A task's number, assigned by the ledger in submission order from 1.
pub type TaskId = u64;
/// An output NFT's number, assigned by the ledger in mint order from 1.
pub type NftId = u64;

/// A ledger's parameters, fixed at its creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerConfig {
    /// A task must be claimed within this many seconds of its submission.
    pub claim_window_s: u64,
    /// A claimed task must be fulfilled within this many seconds of its claim.
    pub fulfil_window_s: u64,
    /// Raters can earn a fulfilled task's rating bounty for this long; then anyone can
    /// sweep what is left to the treasury.
    pub bounty_window_s: u64,
    /// The dev faucet's one-time welcome grant; zero disables the faucet.
    pub faucet_amount: Amount,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            claim_window_s: 300,
            fulfil_window_s: 600,
            bounty_window_s: 7 * 24 * 3600,
            faucet_amount: Amount::tokens(1000),
        }
    }
}

/// Ledger-wide totals. The supply invariant is
/// `Σ balances + escrowed + bounty_pools + treasury = total_minted`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Globals {
    /// Every token ever minted (only the faucet mints).
    pub total_minted: Amount,
    /// Tokens held in escrow for open and claimed tasks.
    pub escrowed: Amount,
    /// Tokens waiting in fulfilled tasks' rating bounties.
    pub bounty_pools: Amount,
    /// The protocol's treasury.
    pub treasury: Amount,
    /// Tasks submitted so far (the last task id).
    pub task_count: u64,
    /// NFTs minted so far (the last NFT id).
    pub nft_count: u64,
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub address: Address,
    pub public_key: PublicKey,
    /// What the key hashes envelopes with (records from before the field read as
    /// SHA3-256).
    #[serde(default)]
    pub hash_algo: HashAlgo,
    /// The sequence number the next envelope signed by this account must carry.
    pub sequence: u64,
    pub balance: Amount,
    /// Whether the dev faucet has granted its welcome amount.
    pub faucet_used: bool,
}

/// A model a node offers, at a price per task or per 1,000 output tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferedModel {
    pub model_id: String,
    /// SHA-256 of the weights file the node runs, published so outputs are traceable.
    pub weights_sha256: Digest32,
    /// The price of one [`PriceUnit`].
    pub price: Amount,
    /// What the price is for.
    #[serde(default)]
    pub unit: PriceUnit,
}

/// What an offer's price pays for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceUnit {
    /// One task, whatever it produces.
    #[default]
    Task,
    /// 1,000 output tokens: a submission escrows its `max_units` tokens' worth, and
    /// the fulfilment pays for the tokens delivered and refunds the rest.
    ThousandTokens,
}

impl PriceUnit {
    /// Every unit, by code.
    pub const ALL: [Self; 2] = [Self::Task, Self::ThousandTokens];

    /// The unit's code on the ledgers (Cadence's `UInt8`) and in signed bytes.
    pub fn code(self) -> u8 {
        match self {
            Self::Task => 0,
            Self::ThousandTokens => 1,
        }
    }

    /// The unit with `code`.
    pub fn from_code(code: u8) -> crate::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|u| u.code() == code)
            .ok_or_else(|| crate::Error::InvalidInput(format!("unknown price unit {code}")))
    }

    /// The snake-case name (`task`, `thousand_tokens`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::ThousandTokens => "thousand_tokens",
        }
    }

    /// Whether tasks of this unit are paid by the units they deliver.
    pub fn is_metered(self) -> bool {
        self != Self::Task
    }
}

impl fmt::Display for PriceUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Task => "per task",
            Self::ThousandTokens => "per 1,000 tokens",
        })
    }
}

/// A node's track record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    pub fulfilled: u64,
    pub missed: u64,
    /// Ratings by the requesters who paid: the only ones that move the score.
    pub ratings_count: u64,
    pub ratings_sum: u64,
    /// Ratings by everyone else: the community score.
    pub community_count: u64,
    pub community_sum: u64,
}

impl NodeStats {
    /// Bayesian reputation: `(5·3.0 + Σ stars) / (5 + n)` over the payers' ratings.
    pub fn score(&self) -> f64 {
        ((PRIOR_WEIGHT * PRIOR_STARS) as f64 + self.ratings_sum as f64)
            / (PRIOR_WEIGHT + self.ratings_count) as f64
    }

    /// `fulfilled / (fulfilled + missed)`, or `None` before the first task ends.
    pub fn reliability(&self) -> Option<f64> {
        let total = self.fulfilled + self.missed;
        (total > 0).then(|| self.fulfilled as f64 / total as f64)
    }

    /// Mean stars of non-payers' ratings, or `None` without any.
    pub fn community_score(&self) -> Option<f64> {
        (self.community_count > 0).then(|| self.community_sum as f64 / self.community_count as f64)
    }

    /// Compares scores exactly (cross-multiplied integers), so every ledger sorts nodes
    /// the same way whatever its floating point does.
    pub fn cmp_score(&self, other: &Self) -> std::cmp::Ordering {
        let num = |s: &Self| u128::from(PRIOR_WEIGHT * PRIOR_STARS + s.ratings_sum);
        let den = |s: &Self| u128::from(PRIOR_WEIGHT + s.ratings_count);
        (num(self) * den(other)).cmp(&(num(other) * den(self)))
    }
}

/// The prior of the reputation score: as if every node started with this many
/// ratings …
const PRIOR_WEIGHT: u64 = 5;
/// … of this many stars each.
const PRIOR_STARS: u64 = 3;

/// A node: an account that serves models for pay. A node is identified by its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub owner: Address,
    pub name: String,
    /// Where the node serves its outputs (`http://host:port`).
    pub endpoint: String,
    pub models: Vec<OfferedModel>,
    pub active: bool,
    pub stats: NodeStats,
    pub registered_at: Timestamp,
}

impl Node {
    /// The offer for `model_id`, if the node makes one.
    pub fn offer(&self, model_id: &str) -> Option<&OfferedModel> {
        self.models.iter().find(|m| m.model_id == model_id)
    }
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Claimed,
    Fulfilled,
    Cancelled,
    Expired,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 5] = [
        Self::Open,
        Self::Claimed,
        Self::Fulfilled,
        Self::Cancelled,
        Self::Expired,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Claimed => "claimed",
            Self::Fulfilled => "fulfilled",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// Whether the task can no longer change status.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Fulfilled | Self::Cancelled | Self::Expired)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| crate::Error::InvalidInput(format!("unknown task status {s:?}")))
    }
}

/// A delivered output: content-addressed, its hash on the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRef {
    pub sha256: Digest32,
    /// Where the bytes can be fetched (`http://…/blobs/<sha256>` or `file://…`).
    pub uri: String,
    pub mime: String,
    pub size: u64,
}

impl OutputRef {
    /// Checks fetched bytes against the SHA-256 on the ledger, as every reader of an
    /// output must; `Err` holds the SHA-256 the bytes have instead.
    pub fn check(&self, bytes: &[u8]) -> std::result::Result<(), Digest32> {
        let got = crate::crypto::sha256(bytes);
        if got == self.sha256 { Ok(()) } else { Err(got) }
    }
}

/// A task's input, held by the requester's side and named on the ledger as outputs are:
/// the node fetches it from `uri` and checks the bytes against `sha256` and `size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRef {
    pub sha256: Digest32,
    pub size: u64,
    /// Where the bytes can be fetched (`http://…/blobs/<sha256>`).
    pub uri: String,
}

impl InputRef {
    /// Checks fetched bytes against the size and SHA-256 on the ledger, as every reader
    /// of an input must.
    pub fn check(&self, bytes: &[u8]) -> crate::Result<()> {
        if bytes.len() as u64 != self.size {
            return Err(crate::Error::InvalidInput(format!(
                "input sha256:{} is {} bytes, the ledger says {}",
                self.sha256,
                bytes.len(),
                self.size
            )));
        }
        let got = crate::crypto::sha256(bytes);
        if got != self.sha256 {
            return Err(crate::Error::InvalidInput(format!(
                "input bytes hash to sha256:{got}, the ledger says sha256:{}",
                self.sha256
            )));
        }
        Ok(())
    }
}

/// A task: a paid request for one inference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub requester: Address,
    /// The node (by owner address) the task is addressed to.
    pub node: Address,
    pub model_id: String,
    /// The weights the node published for the model when the task was submitted.
    pub weights_sha256: Digest32,
    pub prompt: String,
    /// A JSON object of model parameters.
    pub params: String,
    /// The escrowed price: the offer's price, or for a metered offer its price for
    /// `max_units` units.
    pub price: Amount,
    /// The task's input blob, when it has one.
    #[serde(default)]
    pub input: Option<InputRef>,
    /// A metered offer's price per 1,000 units (`None` for a per-task offer).
    #[serde(default)]
    pub unit_price: Option<Amount>,
    /// The most units a metered task may deliver (0 for a per-task offer).
    #[serde(default)]
    pub max_units: u64,
    /// The units the node stated at fulfilment, for a metered task.
    #[serde(default)]
    pub units: Option<u64>,
    /// What went back to the requester: all of the escrow on cancel or expiry, a
    /// metered task's unused units at fulfilment.
    #[serde(default)]
    pub refunded: Amount,
    pub status: TaskStatus,
    pub submitted_at: Timestamp,
    pub claim_deadline: Timestamp,
    pub claimed_at: Option<Timestamp>,
    pub fulfil_deadline: Option<Timestamp>,
    pub fulfilled_at: Option<Timestamp>,
    pub result: Option<OutputRef>,
    pub nft: Option<NftId>,
    /// What is left of the task's rating bounty.
    pub bounty_pool: Amount,
    /// The bounty each of the first raters receives.
    pub bounty_share: Amount,
    /// How many raters have been paid from the bounty.
    pub bounty_paid: u8,
}

/// One account's rating of one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    pub task: TaskId,
    pub rater: Address,
    pub stars: u8,
    /// Whether the rater is the requester (whose rating moves the node's score).
    pub by_requester: bool,
    /// What the rater earned from the task's bounty.
    pub bounty: Amount,
    pub at: Timestamp,
}

/// The record of an output, owned by its requester: what was asked of which weights,
/// and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputNft {
    pub id: NftId,
    pub owner: Address,
    pub task: TaskId,
    pub prompt: String,
    pub model_id: String,
    pub weights_sha256: Digest32,
    pub params: String,
    /// The task's input (a conversation, an image), by hash.
    #[serde(default)]
    pub input: Option<InputRef>,
    /// The units the output holds, for a metered task.
    #[serde(default)]
    pub units: Option<u64>,
    pub output: OutputRef,
    pub node: Address,
    pub requester: Address,
    pub minted_at: Timestamp,
}
