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
    /// 1,000 tokens (a language model's output, an embedding model's input): a
    /// submission escrows its `max_units` tokens' worth, and the fulfilment pays for
    /// the tokens used and refunds the rest.
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
    /// Tasks that expired on the node: claimed and not fulfilled in time, or never
    /// claimed at all.
    pub missed: u64,
    /// Tasks the node declined (the requester was refunded at once).
    #[serde(default)]
    pub declined: u64,
    /// Ratings by the requesters who paid: the only ones that move the score.
    pub ratings_count: u64,
    pub ratings_sum: u64,
    /// What the rated tasks cost their payers, in base units, and the same weighted by
    /// stars (`Σ cost·stars`): the score weighs each payer's rating by what it paid.
    #[serde(default)]
    pub rated_paid: u64,
    #[serde(default)]
    pub rated_paid_stars: u64,
    /// Ratings by everyone else: the community score.
    pub community_count: u64,
    pub community_sum: u64,
}

impl NodeStats {
    /// Reputation: the payers' stars weighted by what each rated task cost, with a prior
    /// of 3 stars weighing as much as [`PRIOR_PAID`] of paid tasks:
    /// `(3·P + Σ cost·stars) / (P + Σ cost)`. Moving the score costs in proportion to
    /// the move: a node's owner rating its own node through fresh accounts pays for
    /// every rating (the fees are the part lost) and lifts the score only as far as the
    /// money outweighs the prior and the honest payers.
    pub fn score(&self) -> f64 {
        (PRIOR_PAID as f64 * PRIOR_STARS as f64 + self.rated_paid_stars as f64)
            / (PRIOR_PAID as f64 + self.rated_paid as f64)
    }

    /// `fulfilled / (fulfilled + missed)`, or `None` before the first task ends.
    pub fn reliability(&self) -> Option<f64> {
        let total = self.fulfilled + self.missed;
        (total > 0).then(|| self.fulfilled as f64 / total as f64)
    }

    /// The lower bound of the 95 % Wilson interval of the node's reliability: 0 with no
    /// history, so a node that never delivered cannot outrank one with a record, and
    /// closer to the observed rate the longer the record.
    pub fn reliability_bound(&self) -> f64 {
        wilson_lower_bound(self.fulfilled, self.fulfilled + self.missed)
    }

    /// What listings rank by: the score scaled by the reliability bound.
    pub fn rank_key(&self) -> f64 {
        self.score() * self.reliability_bound()
    }

    /// Mean stars of non-payers' ratings, or `None` without any.
    pub fn community_score(&self) -> Option<f64> {
        (self.community_count > 0).then(|| self.community_sum as f64 / self.community_count as f64)
    }

    /// Compares rank keys; every ledger's listing goes through this one function (IEEE
    /// arithmetic with a correctly rounded square root), so they sort nodes alike.
    pub fn cmp_rank(&self, other: &Self) -> std::cmp::Ordering {
        self.rank_key().total_cmp(&other.rank_key())
    }
}

/// The lower bound of the Wilson score interval (z = 1.96) for `successes` of `trials`.
pub fn wilson_lower_bound(successes: u64, trials: u64) -> f64 {
    if trials == 0 {
        return 0.0;
    }
    const Z: f64 = 1.96;
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = Z * Z;
    let centre = p + z2 / (2.0 * n);
    let margin = Z * ((p * (1.0 - p) + z2 / (4.0 * n)) / n).sqrt();
    ((centre - margin) / (1.0 + z2 / n)).max(0.0)
}

/// The prior of the reputation score: as if every node started with this much paid for
/// rated tasks (1 FLOWNET, in base units) …
pub const PRIOR_PAID: u64 = 100_000_000;
/// … rated this many stars.
pub const PRIOR_STARS: u64 = 3;

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
    /// The node said it cannot run the task; the requester was refunded at once.
    Declined,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 6] = [
        Self::Open,
        Self::Claimed,
        Self::Fulfilled,
        Self::Cancelled,
        Self::Expired,
        Self::Declined,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Claimed => "claimed",
            Self::Fulfilled => "fulfilled",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Declined => "declined",
        }
    }

    /// Whether the task can no longer change status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Fulfilled | Self::Cancelled | Self::Expired | Self::Declined
        )
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

    /// The output's IPFS CID (a raw block holding the ledger's SHA-256), when it is
    /// one block; see [`crate::cid`].
    pub fn cid(&self) -> Option<String> {
        crate::cid::cid_of(&self.sha256, self.size)
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

    /// The input's IPFS CID, when it is one block; see [`crate::cid`].
    pub fn cid(&self) -> Option<String> {
        crate::cid::cid_of(&self.sha256, self.size)
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
    /// Why the node declined the task, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declined_reason: Option<String>,
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
