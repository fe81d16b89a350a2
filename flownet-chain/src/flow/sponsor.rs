//! Gasless transactions: a [`Sponsor`] co-signs, as payer only, transactions
//! that run one of the project's own Cadence templates, so users never hold
//! FLOW.
//!
//! Before it signs the envelope the sponsor checks, in this order:
//!
//! 1. the payer is the sponsor's address ([`SponsorError::PayerMismatch`]);
//! 2. the sponsor is neither proposer nor authorizer: a payer's envelope
//!    signature would otherwise authorize the script over the sponsor's own
//!    account ([`SponsorError::SponsorAsSigner`]);
//! 3. the script's SHA3-256 is in the [`Whitelist`] of the user-facing
//!    templates of `cadence/transactions`, rendered for the network
//!    ([`SponsorError::NotWhitelisted`]); the gas limit is at most the
//!    configured maximum ([`SponsorError::GasLimit`]);
//! 4. every proposer and authorizer signed the payload with its on-chain keys
//!    (full weight, 1000, of unrevoked keys; the proposal key itself among
//!    them), so forged transactions are refused before they cost anything
//!    ([`SponsorError::BadPayloadSignature`]);
//! 5. the proposer's account has budget left in its token bucket
//!    ([`SponsorError::RateLimited`]); checked after the signatures, so a
//!    forger cannot drain someone else's bucket.
//!
//! A sponsor built [`Sponsor::with_accounts`] also onboards users who hold
//! nothing but a key:
//!
//! - [`Sponsor::create_account`] takes the user's signed core envelope of
//!   `create_account` for the FlowLedger's ledger id ([`check_create_account`]:
//!   the core's rules — the signer is the key's derived address, sequence 0 —
//!   and the signature, which proves the requester holds the key), refuses a
//!   key it already created an account for, takes a token of one global
//!   bucket, then proposes, authorizes and pays `create_account.cdc` itself
//!   and returns the address of the sealed `flow.AccountCreated` event;
//! - [`Sponsor::faucet`] co-signs `faucet.cdc`, the one script where the
//!   sponsor appears as an authorizer (its `Sponsor` resource grants the
//!   welcome amount): the user proposes and authorizes first, the sponsor is
//!   second authorizer and payer, there are no arguments; the user's payload
//!   signature, the contract's `faucetUsed` (the core's error, before the
//!   transaction costs anything) and the user's token bucket are checked.
//!   Every other template still refuses the sponsor as a signer.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use flownet_core::{
    Action, Address, LedgerId, PublicKey, SignedEnvelope, crypto::HashAlgo, rate::TokenBucket,
};

use super::{
    ProposalKey, Transaction, Value,
    access::{AccessClient, FlowAccountInfo},
    account::{FlowSigner, created_address, ledger_id},
    errors,
    keys::{self, HashAlgorithm},
    templates::{Network, Template},
};

/// The weight a signer's keys must add up to, as on Flow.
pub const FULL_WEIGHT: u32 = 1000;

/// The templates a sponsor pays for: every user-facing transaction. Account
/// creation and the faucet need the sponsor as an authorizer, and the admin
/// transactions are the deployer's: none of them is sponsored.
pub const SPONSORED: [Template; 12] = [
    Template::SetupAccount,
    Template::Transfer,
    Template::RegisterNode,
    Template::SetNodeActive,
    Template::Submit,
    Template::Cancel,
    Template::Claim,
    Template::Fulfil,
    Template::Expire,
    Template::Rate,
    Template::Sweep,
    Template::CollectOutputs,
];

/// Most authorizers a sponsored transaction may list (the account lookups it costs).
pub const MAX_AUTHORIZERS: usize = 4;
/// Most payload signatures a sponsored transaction may carry.
pub const MAX_PAYLOAD_SIGNATURES: usize = 8;

/// Why a sponsor refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SponsorError {
    #[error("the payer is {got}, not the sponsor {expected}")]
    PayerMismatch { expected: Address, got: Address },
    #[error("the sponsor {0} pays only: it must be neither proposer nor authorizer")]
    SponsorAsSigner(Address),
    #[error("script {sha3_256} is not one of FlowNet's transaction templates")]
    NotWhitelisted { sha3_256: String },
    #[error("gas limit {got} is above the sponsor's maximum {max}")]
    GasLimit { got: u64, max: u64 },
    #[error("bad payload signature for {address}: {reason}")]
    BadPayloadSignature { address: Address, reason: String },
    #[error("rate limited: {account} may send again in {retry_after_ms} ms")]
    RateLimited {
        account: Address,
        retry_after_ms: u64,
    },
    #[error("access api: {0}")]
    Access(String),
    #[error("transaction: {0}")]
    Transaction(String),
    /// This sponsor was started without account creation and the faucet.
    #[error("this sponsor does not {0}")]
    NotOffered(String),
    #[error("invalid envelope: {0}")]
    InvalidEnvelope(String),
    #[error("the envelope is for ledger {got}, this sponsor serves ledger {expected}")]
    WrongLedger { expected: LedgerId, got: LedgerId },
    #[error("bad signature: the envelope is not signed by the key it registers for {0}")]
    BadEnvelopeSignature(Address),
    /// The message says which account was created for the key.
    #[error("{0}")]
    AccountExists(String),
    #[error("too many new accounts: the sponsor creates the next in {retry_after_ms} ms")]
    TooManyAccounts { retry_after_ms: u64 },
    #[error("faucet: account {0} has already received its welcome amount")]
    FaucetUsed(Address),
    #[error("not a faucet transaction: {0}")]
    BadFaucet(String),
    /// The transaction was sealed with this Cadence error.
    #[error("the transaction failed: {0}")]
    Execution(String),
}

impl From<SponsorError> for flownet_core::Error {
    fn from(e: SponsorError) -> Self {
        match e {
            SponsorError::BadPayloadSignature { address, .. } => Self::BadSignature(address),
            SponsorError::BadEnvelopeSignature(address) => Self::BadSignature(address),
            SponsorError::Access(m) => Self::Network(m),
            e @ (SponsorError::InvalidEnvelope(_) | SponsorError::WrongLedger { .. }) => {
                Self::InvalidInput(e.to_string())
            }
            SponsorError::AccountExists(m) => Self::AlreadyExists(m),
            SponsorError::FaucetUsed(a) => Self::Faucet(format!(
                "account {a} has already received its welcome amount"
            )),
            SponsorError::Execution(m) => errors::from_execution_error(&m),
            other => Self::Unauthorized(format!("the sponsor refused: {other}")),
        }
    }
}

/// Whoever pays for a [`FlowLedger`](super::FlowLedger)'s transactions when
/// it holds no sponsor key: a [`Sponsor`] in process, or the HTTP client of a
/// `flownet sponsor` service.
#[async_trait]
pub trait Payer: Send + Sync + std::fmt::Debug {
    /// The address transactions must name as payer.
    fn address(&self) -> Address;
    /// The key the payer signs envelopes with: clients that collect the
    /// signatures themselves (FCL) must name it before it signs.
    fn key_index(&self) -> u32 {
        0
    }
    /// Signs the envelope of `tx` (its payload already signed) and sends it;
    /// the transaction's id.
    async fn pay(&self, tx: Transaction) -> Result<[u8; 32], SponsorError>;

    /// Creates an account for the key of `signed`, a `create_account`
    /// envelope its key signed for the FlowLedger's ledger id; the new address
    /// and the id of the (sealed) transaction that created it.
    async fn create_account(
        &self,
        signed: &SignedEnvelope,
    ) -> Result<CreatedAccount, SponsorError> {
        let _ = signed;
        Err(SponsorError::NotOffered("create accounts".into()))
    }

    /// Co-signs the faucet transaction `tx` (the user proposer and first
    /// authorizer, the payer second authorizer; the payload signed) and sends
    /// it; the transaction's id.
    async fn faucet(&self, tx: Transaction) -> Result<[u8; 32], SponsorError> {
        let _ = tx;
        Err(SponsorError::NotOffered("grant the faucet".into()))
    }

    /// The checks of [`Payer::faucet`] and the payer's envelope signature,
    /// nothing sent: `tx` with that signature.
    async fn sign_faucet(&self, tx: Transaction) -> Result<Transaction, SponsorError> {
        let _ = tx;
        Err(SponsorError::NotOffered("grant the faucet".into()))
    }

    /// Whether this payer creates accounts and grants the faucet.
    fn onboards(&self) -> bool {
        false
    }

    /// Checks `tx` as [`Payer::pay`] does and signs its envelope, without
    /// sending it: for clients that send the transaction themselves (the web
    /// page through FCL). Returns `tx` with the payer's envelope signature.
    async fn sign_envelope(&self, tx: Transaction) -> Result<Transaction, SponsorError>;
}

/// An account a sponsor created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedAccount {
    pub address: Address,
    /// The sealed transaction that created it.
    pub transaction: [u8; 32],
}

#[async_trait]
impl Payer for Sponsor {
    fn address(&self) -> Address {
        self.payer.address
    }

    fn key_index(&self) -> u32 {
        self.payer.key_index
    }

    async fn pay(&self, tx: Transaction) -> Result<[u8; 32], SponsorError> {
        self.sponsor(tx).await
    }

    async fn create_account(
        &self,
        signed: &SignedEnvelope,
    ) -> Result<CreatedAccount, SponsorError> {
        Sponsor::create_account(self, signed).await
    }

    async fn faucet(&self, tx: Transaction) -> Result<[u8; 32], SponsorError> {
        Sponsor::faucet(self, tx).await
    }

    async fn sign_faucet(&self, tx: Transaction) -> Result<Transaction, SponsorError> {
        Sponsor::sign_faucet(self, tx).await
    }

    fn onboards(&self) -> bool {
        self.onboarding.is_some()
    }

    async fn sign_envelope(&self, tx: Transaction) -> Result<Transaction, SponsorError> {
        Sponsor::sign_envelope(self, tx).await
    }
}

/// SHA3-256 of a script's bytes, as the whitelist keys it.
pub fn script_hash(script: &[u8]) -> [u8; 32] {
    HashAlgorithm::Sha3_256.hash(&[script])
}

/// The SHA3-256 hashes of the scripts a sponsor pays for.
#[derive(Debug, Clone, Default)]
pub struct Whitelist {
    hashes: HashMap<[u8; 32], Template>,
}

impl Whitelist {
    /// The [`SPONSORED`] templates as rendered for `network` (imports
    /// resolved), which must know where FlowNet is deployed.
    pub fn for_network(network: &Network) -> super::Result<Self> {
        let mut out = Self::default();
        for t in SPONSORED {
            out.insert(t, network.template(t)?.as_bytes());
        }
        Ok(out)
    }

    /// Adds one script.
    pub fn insert(&mut self, template: Template, script: &[u8]) {
        self.hashes.insert(script_hash(script), template);
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The template `script` is, or why it is refused.
    pub fn check(&self, script: &[u8]) -> Result<Template, SponsorError> {
        let h = script_hash(script);
        self.hashes
            .get(&h)
            .copied()
            .ok_or_else(|| SponsorError::NotWhitelisted {
                sha3_256: hex::encode(h),
            })
    }
}

/// A token bucket per key (an account, a client's IP, or `()` for one global
/// bucket): `burst` at once, refilled at `burst` per `period`.
#[derive(Debug)]
pub struct RateLimiter<K = Address> {
    burst: u32,
    period: Duration,
    buckets: HashMap<K, TokenBucket>,
}

impl<K: std::hash::Hash + Eq> RateLimiter<K> {
    /// # Panics
    /// When `burst` is zero or `period` is zero.
    pub fn new(burst: u32, period: Duration) -> Self {
        assert!(
            burst > 0 && !period.is_zero(),
            "a rate limit needs a burst and a period"
        );
        Self {
            burst,
            period,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token of `key`'s bucket at `now`, or says in how many
    /// milliseconds one is back.
    pub fn take_key(&mut self, key: K, now: Instant) -> Result<(), u64> {
        let burst = f64::from(self.burst);
        let per_second = burst / self.period.as_secs_f64();
        // Idle buckets are full and carry no information: drop them when the map
        // grows, so the map stays bounded by the clients of one period.
        if self.buckets.len() >= 10_000 && !self.buckets.contains_key(&key) {
            let period = self.period;
            self.buckets
                .retain(|_, b| now.duration_since(b.last()) < period);
        }
        self.buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::full(burst, now))
            .take(burst, per_second, now)
            .map_err(|wait| (wait * 1000.0).ceil() as u64)
    }
}

impl RateLimiter<Address> {
    /// Takes one token of `account`'s bucket at `now`, or says how long until
    /// one is back.
    pub fn take(&mut self, account: Address, now: Instant) -> Result<(), SponsorError> {
        self.take_key(account, now)
            .map_err(|retry_after_ms| SponsorError::RateLimited {
                account,
                retry_after_ms,
            })
    }
}

/// Checks that every proposer and authorizer other than `payer` signed the
/// payload with full weight of its unrevoked on-chain keys in `accounts`, and
/// that the proposal key is among the signing keys.
pub fn verify_payload_signatures(
    tx: &Transaction,
    accounts: &HashMap<Address, FlowAccountInfo>,
) -> Result<(), SponsorError> {
    let tag = keys::padded_tag(keys::TRANSACTION_DOMAIN_TAG);
    let message = tx.payload_message();
    let bad =
        |address: Address, reason: String| SponsorError::BadPayloadSignature { address, reason };
    for s in &tx.payload_signatures {
        if s.address == tx.payer {
            return Err(bad(s.address, "the payer signs the envelope only".into()));
        }
        if !tx.signer_list().contains(&s.address) {
            return Err(bad(
                s.address,
                "signed but is neither proposer nor authorizer".into(),
            ));
        }
    }
    // The payer authorizes with its envelope signature (the faucet's
    // sponsor); everyone else signs the payload.
    let mut required = vec![tx.proposal_key.address];
    for a in &tx.authorizers {
        // A payer that also authorizes signs the envelope only, as Flow has it
        // (the faucet: the sponsor pays and holds the grant).
        if !required.contains(a) && *a != tx.payer {
            required.push(*a);
        }
    }
    for address in required {
        let info = accounts
            .get(&address)
            .ok_or_else(|| bad(address, "no such account".into()))?;
        let mut weight = 0u32;
        let mut seen = Vec::new();
        for s in tx
            .payload_signatures
            .iter()
            .filter(|s| s.address == address)
        {
            if seen.contains(&s.key_index) {
                return Err(bad(address, format!("key {} signed twice", s.key_index)));
            }
            seen.push(s.key_index);
            let key = info
                .keys
                .iter()
                .find(|k| k.index == s.key_index)
                .ok_or_else(|| bad(address, format!("the account has no key {}", s.key_index)))?;
            if key.revoked {
                return Err(bad(address, format!("key {} is revoked", s.key_index)));
            }
            let (Some(algorithm), Some(hash)) = (key.signature_algorithm, key.hash_algorithm)
            else {
                return Err(bad(
                    address,
                    format!("key {} has an unsupported algorithm", s.key_index),
                ));
            };
            if !keys::verify(
                algorithm,
                hash,
                &key.public_key,
                &tag,
                &message,
                &s.signature,
            ) {
                return Err(bad(
                    address,
                    format!("key {}'s signature does not verify", s.key_index),
                ));
            }
            weight = weight.saturating_add(key.weight);
        }
        if weight < FULL_WEIGHT {
            return Err(bad(
                address,
                format!("signing keys weigh {weight}, {FULL_WEIGHT} needed"),
            ));
        }
        if address == tx.proposal_key.address && !seen.contains(&tx.proposal_key.key_index) {
            return Err(bad(
                address,
                format!(
                    "the proposal key {} did not sign",
                    tx.proposal_key.key_index
                ),
            ));
        }
    }
    Ok(())
}

/// The rules of a [`Sponsor`].
#[derive(Debug, Clone)]
pub struct SponsorPolicy {
    /// Transactions per account at once …
    pub burst: u32,
    /// … refilled over this period.
    pub period: Duration,
    /// The highest gas (computation) limit paid for.
    pub max_gas_limit: u64,
}

impl Default for SponsorPolicy {
    fn default() -> Self {
        Self {
            burst: 10,
            period: Duration::from_secs(60),
            max_gas_limit: 9999,
        }
    }
}

/// The limits of account creation and the faucet ([`Sponsor::with_accounts`]).
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    /// New accounts the whole service creates at once …
    pub burst: u32,
    /// … refilled over this period.
    pub period: Duration,
    /// New accounts one client (IP address) of the HTTP service asks for at
    /// once …
    pub per_client_burst: u32,
    /// … refilled over this period.
    pub per_client_period: Duration,
    /// FLOW (10⁻⁸ units) each new account receives for its storage.
    pub initial_flow: u64,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        Self {
            burst: 30,
            period: Duration::from_secs(60),
            per_client_burst: 5,
            per_client_period: Duration::from_secs(3600),
            initial_flow: 1_000_000,
        }
    }
}

/// What a sponsor needs to create accounts and grant the faucet.
#[derive(Debug)]
struct Onboarding {
    ledger_id: LedgerId,
    network: Network,
    create_account: String,
    faucet_hash: [u8; 32],
    initial_flow: u64,
    limiter: Mutex<RateLimiter<()>>,
    /// Keys this process created an account for (`None` while the creating
    /// transaction is in flight).
    created: Mutex<HashMap<[u8; 64], Option<Address>>>,
}

/// Checks a `create_account` envelope as the core's rulebook does, for the
/// ledger `ledger`: the signer is the address derived from the key, the
/// sequence is 0, and the key signed it with its own hash algorithm. Returns
/// the key and its hash algorithm.
pub fn check_create_account(
    signed: &SignedEnvelope,
    ledger: LedgerId,
) -> Result<(PublicKey, HashAlgo), SponsorError> {
    let env = &signed.envelope;
    let Action::CreateAccount {
        public_key,
        hash_algo,
    } = &env.action
    else {
        return Err(SponsorError::InvalidEnvelope(format!(
            "expected a create_account envelope, got {}",
            env.action.name()
        )));
    };
    if env.ledger != ledger {
        return Err(SponsorError::WrongLedger {
            expected: ledger,
            got: env.ledger,
        });
    }
    let derived = Address::derive(public_key);
    if env.signer != derived {
        return Err(SponsorError::InvalidEnvelope(format!(
            "signer {} is not the address of the key (expected {derived})",
            env.signer
        )));
    }
    if env.sequence != 0 {
        return Err(SponsorError::InvalidEnvelope(format!(
            "a create_account envelope has sequence 0, not {}",
            env.sequence
        )));
    }
    if !signed.verify_with(public_key, *hash_algo) {
        return Err(SponsorError::BadEnvelopeSignature(env.signer));
    }
    Ok((*public_key, *hash_algo))
}

/// Pays for the project's own transactions; see the module documentation.
#[derive(Debug)]
pub struct Sponsor {
    client: AccessClient,
    payer: FlowSigner,
    whitelist: Whitelist,
    max_gas_limit: u64,
    limiter: Mutex<RateLimiter>,
    onboarding: Option<Onboarding>,
    // Transactions the sponsor proposes itself (account creation) take its
    // key's sequence number in turn.
    propose_lock: tokio::sync::Mutex<()>,
}

impl Sponsor {
    pub fn new(
        client: AccessClient,
        payer: FlowSigner,
        whitelist: Whitelist,
        policy: &SponsorPolicy,
    ) -> Self {
        Self {
            client,
            payer,
            whitelist,
            max_gas_limit: policy.max_gas_limit,
            limiter: Mutex::new(RateLimiter::new(policy.burst, policy.period)),
            onboarding: None,
            propose_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Lets this sponsor create accounts and grant the faucet on `network`
    /// (which must know where FlowNet is deployed; its `chain_id` and that
    /// address make the ledger id envelopes must name), within `policy`.
    pub fn with_accounts(
        mut self,
        network: &Network,
        policy: &AccountPolicy,
    ) -> super::Result<Self> {
        self.onboarding = Some(Onboarding {
            ledger_id: ledger_id(&network.chain_id, network.marketplace()?),
            network: network.clone(),
            create_account: network.template(Template::CreateAccount)?,
            faucet_hash: script_hash(network.template(Template::Faucet)?.as_bytes()),
            initial_flow: policy.initial_flow,
            limiter: Mutex::new(RateLimiter::new(policy.burst, policy.period)),
            created: Mutex::new(HashMap::new()),
        });
        Ok(self)
    }

    /// The ledger id `create_account` envelopes must name, when this sponsor
    /// creates accounts.
    pub fn ledger_id(&self) -> Option<LedgerId> {
        self.onboarding.as_ref().map(|o| o.ledger_id)
    }

    fn onboarding(&self, what: &str) -> Result<&Onboarding, SponsorError> {
        self.onboarding
            .as_ref()
            .ok_or_else(|| SponsorError::NotOffered(what.into()))
    }

    /// Creates an account for the key of `signed` (see the module
    /// documentation), waits for the seal and returns the new address.
    pub async fn create_account(
        &self,
        signed: &SignedEnvelope,
    ) -> Result<CreatedAccount, SponsorError> {
        let on = self.onboarding("create accounts")?;
        let (public_key, hash_algo) = check_create_account(signed, on.ledger_id)?;
        let key = *public_key.as_bytes();
        {
            let mut created = on.created.lock().expect("created lock");
            if let Some(done) = created.get(&key) {
                return Err(SponsorError::AccountExists(match done {
                    Some(a) => {
                        format!("this sponsor already created account {a} for key {public_key}")
                    }
                    None => format!("this sponsor is creating an account for key {public_key}"),
                }));
            }
            on.limiter
                .lock()
                .expect("account limiter lock")
                .take_key((), Instant::now())
                .map_err(|retry_after_ms| SponsorError::TooManyAccounts { retry_after_ms })?;
            created.insert(key, None);
        }
        let result = self.send_create_account(on, &public_key, hash_algo).await;
        let mut created = on.created.lock().expect("created lock");
        match &result {
            Ok(c) => {
                created.insert(key, Some(c.address));
            }
            Err(_) => {
                created.remove(&key);
            }
        }
        result
    }

    async fn send_create_account(
        &self,
        on: &Onboarding,
        public_key: &PublicKey,
        hash_algo: HashAlgo,
    ) -> Result<CreatedAccount, SponsorError> {
        let access = |e: super::FlowError| SponsorError::Access(e.to_string());
        let me = &self.payer;
        let _turn = self.propose_lock.lock().await;
        let info = self
            .client
            .account(me.address)
            .await
            .map_err(access)?
            .ok_or_else(|| {
                SponsorError::Access(format!("the sponsor account {} is gone", me.address))
            })?;
        let sequence = info
            .keys
            .iter()
            .find(|k| k.index == me.key_index)
            .map(|k| k.sequence_number)
            .ok_or_else(|| {
                SponsorError::Access(format!("the sponsor has no key {}", me.key_index))
            })?;
        let args = [
            Value::string(hex::encode(public_key.as_bytes())),
            Value::uint8(hash_algo.flow_code()),
            Value::UFix64(on.initial_flow),
        ];
        let reference = self.client.latest_block(true).await.map_err(access)?;
        let mut tx = Transaction::new(
            on.create_account.clone(),
            args.iter().map(Value::to_json_bytes).collect(),
            reference.id,
            self.max_gas_limit,
            ProposalKey {
                address: me.address,
                key_index: me.key_index,
                sequence_number: sequence,
            },
            me.address,
            vec![me.address],
        );
        tx.sign_envelope(me.address, me.key_index, &me.key)
            .map_err(|e| SponsorError::Transaction(e.to_string()))?;
        let id = self.client.send_transaction(&tx).await.map_err(access)?;
        let r = self
            .client
            .wait_sealed(id, Duration::from_millis(100), Duration::from_secs(60))
            .await
            .map_err(access)?;
        if !r.error_message.is_empty() {
            return Err(SponsorError::Execution(r.error_message));
        }
        let address = created_address(&r).map_err(|e| SponsorError::Transaction(e.to_string()))?;
        tracing::info!(%address, key = %public_key, "sponsor created an account");
        Ok(CreatedAccount {
            address,
            transaction: id,
        })
    }

    /// Checks the faucet transaction `tx` (see the module documentation),
    /// signs its envelope as payer and second authorizer, sends it and
    /// returns its id (not waiting for the seal).
    pub async fn faucet(&self, tx: Transaction) -> Result<[u8; 32], SponsorError> {
        let tx = self.sign_faucet(tx).await?;
        self.client
            .send_transaction(&tx)
            .await
            .map_err(|e| SponsorError::Access(e.to_string()))
    }

    /// Every check of [`Sponsor::faucet`], then the sponsor's envelope
    /// signature (as payer and second authorizer) without sending: for clients
    /// that send the transaction themselves (the web page with FCL).
    pub async fn sign_faucet(&self, mut tx: Transaction) -> Result<Transaction, SponsorError> {
        let on = self.onboarding("grant the faucet")?;
        let me = self.payer.address;
        if tx.payer != me {
            return Err(SponsorError::PayerMismatch {
                expected: me,
                got: tx.payer,
            });
        }
        let user = tx.proposal_key.address;
        if user == me || tx.authorizers != [user, me] {
            return Err(SponsorError::BadFaucet(format!(
                "the user proposes and authorizes first, the sponsor {me} authorizes second"
            )));
        }
        let hash = script_hash(&tx.script);
        if hash != on.faucet_hash {
            return Err(SponsorError::NotWhitelisted {
                sha3_256: hex::encode(hash),
            });
        }
        if !tx.arguments.is_empty() {
            return Err(SponsorError::BadFaucet(
                "the faucet takes no arguments".into(),
            ));
        }
        if tx.gas_limit > self.max_gas_limit {
            return Err(SponsorError::GasLimit {
                got: tx.gas_limit,
                max: self.max_gas_limit,
            });
        }
        let info = self
            .client
            .account(user)
            .await
            .map_err(|e| SponsorError::Access(e.to_string()))?
            .ok_or_else(|| SponsorError::BadPayloadSignature {
                address: user,
                reason: "no such account".into(),
            })?;
        verify_payload_signatures(&tx, &HashMap::from([(user, info)]))?;
        let get_account = on
            .network
            .template(Template::GetAccount)
            .map_err(|e| SponsorError::Transaction(e.to_string()))?;
        let used = self
            .client
            .execute_script(get_account.as_bytes(), &[Value::Address(user)])
            .await
            .map_err(|e| SponsorError::Access(e.to_string()))?
            .field("faucetUsed")
            .and_then(Value::as_bool)
            .map_err(|e| SponsorError::Access(format!("reading the account's faucet use: {e}")))?;
        if used {
            return Err(SponsorError::FaucetUsed(user));
        }
        self.limiter
            .lock()
            .expect("rate limiter lock")
            .take(user, Instant::now())?;
        tx.envelope_signatures.clear();
        tx.sign_envelope(me, self.payer.key_index, &self.payer.key)
            .map_err(|e| SponsorError::Transaction(e.to_string()))?;
        Ok(tx)
    }

    /// The address that pays: the `payer` of the transactions it signs.
    pub fn address(&self) -> Address {
        self.payer.address
    }

    /// Checks `tx` (without envelope signatures), signs its envelope as
    /// payer, sends it and returns its id (not waiting for the seal).
    pub async fn sponsor(&self, tx: Transaction) -> Result<[u8; 32], SponsorError> {
        let tx = self.sign_envelope(tx).await?;
        self.client
            .send_transaction(&tx)
            .await
            .map_err(|e| SponsorError::Access(e.to_string()))
    }

    /// Every check of [`Sponsor::sponsor`], then the payer's envelope
    /// signature; nothing is sent. The caller (a browser with FCL) sends the
    /// transaction itself. A signed envelope costs the sponsor only when it is
    /// sent, and the rate limit counts it here all the same.
    pub async fn sign_envelope(&self, tx: Transaction) -> Result<Transaction, SponsorError> {
        self.precheck(&tx)?;
        let mut accounts = HashMap::new();
        for address in std::iter::once(tx.proposal_key.address).chain(tx.authorizers.clone()) {
            if accounts.contains_key(&address) {
                continue;
            }
            let info = self
                .client
                .account(address)
                .await
                .map_err(|e| SponsorError::Access(e.to_string()))?
                .ok_or_else(|| SponsorError::BadPayloadSignature {
                    address,
                    reason: "no such account".into(),
                })?;
            accounts.insert(address, info);
        }
        self.sign_checked(tx, &accounts)
    }

    /// Checks 1 to 3 of the module documentation: what needs no account.
    fn precheck(&self, tx: &Transaction) -> Result<(), SponsorError> {
        let me = self.payer.address;
        if tx.payer != me {
            return Err(SponsorError::PayerMismatch {
                expected: me,
                got: tx.payer,
            });
        }
        if tx.proposal_key.address == me || tx.authorizers.contains(&me) {
            return Err(SponsorError::SponsorAsSigner(me));
        }
        self.whitelist.check(&tx.script)?;
        if tx.gas_limit > self.max_gas_limit {
            return Err(SponsorError::GasLimit {
                got: tx.gas_limit,
                max: self.max_gas_limit,
            });
        }
        // Bounds on what the account lookups cost: FlowNet's templates have one or
        // two authorizers, each signing with a key or two.
        if tx.authorizers.len() > MAX_AUTHORIZERS {
            return Err(SponsorError::Transaction(format!(
                "{} authorizers: FlowNet's transactions have at most {MAX_AUTHORIZERS}",
                tx.authorizers.len()
            )));
        }
        if tx.payload_signatures.len() > MAX_PAYLOAD_SIGNATURES {
            return Err(SponsorError::Transaction(format!(
                "{} payload signatures: at most {MAX_PAYLOAD_SIGNATURES} are checked",
                tx.payload_signatures.len()
            )));
        }
        // Every signer must have signed before its account is looked up.
        for address in std::iter::once(tx.proposal_key.address).chain(tx.authorizers.clone()) {
            if !tx.payload_signatures.iter().any(|s| s.address == address) {
                return Err(SponsorError::BadPayloadSignature {
                    address,
                    reason: "no payload signature".into(),
                });
            }
        }
        Ok(())
    }

    /// Checks 4 and 5 against the signers' `accounts`, then the payer's
    /// envelope signature.
    fn sign_checked(
        &self,
        mut tx: Transaction,
        accounts: &HashMap<Address, FlowAccountInfo>,
    ) -> Result<Transaction, SponsorError> {
        let me = self.payer.address;
        verify_payload_signatures(&tx, accounts)?;
        self.limiter
            .lock()
            .expect("rate limiter lock")
            .take(tx.proposal_key.address, Instant::now())?;
        tx.envelope_signatures.clear();
        tx.sign_envelope(me, self.payer.key_index, &self.payer.key)
            .map_err(|e| SponsorError::Transaction(e.to_string()))?;
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{
        ProposalKey,
        access::AccountKey,
        keys::{FlowKey, SignatureAlgorithm},
    };

    fn addr(b: u8) -> Address {
        Address([0, 0, 0, 0, 0, 0, 0, b])
    }

    fn network() -> Network {
        Network::named("emulator").unwrap().with_flownet_at(addr(7))
    }

    fn account(address: Address, keys: &[(&FlowKey, u32)]) -> FlowAccountInfo {
        FlowAccountInfo {
            address,
            balance: 0,
            keys: keys
                .iter()
                .enumerate()
                .map(|(i, (k, weight))| AccountKey {
                    index: i as u32,
                    public_key: k.public_key().to_vec(),
                    signature_algorithm: Some(k.algorithm()),
                    hash_algorithm: Some(k.hash_algorithm()),
                    weight: *weight,
                    sequence_number: 0,
                    revoked: false,
                })
                .collect(),
            contracts: Vec::new(),
        }
    }

    fn submit_tx(proposer: Address, payer: Address) -> Transaction {
        Transaction::new(
            network().template(Template::Submit).unwrap(),
            vec![br#"{"type":"UInt64","value":"7"}"#.to_vec()],
            [3; 32],
            9999,
            ProposalKey {
                address: proposer,
                key_index: 0,
                sequence_number: 5,
            },
            payer,
            vec![proposer],
        )
    }

    fn p256() -> FlowKey {
        FlowKey::generate(SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256)
    }

    #[test]
    fn the_whitelist_holds_the_rendered_user_templates_only() {
        let net = network();
        let w = Whitelist::for_network(&net).unwrap();
        assert_eq!(w.len(), SPONSORED.len());
        for t in SPONSORED {
            assert_eq!(
                w.check(net.template(t).unwrap().as_bytes()).unwrap(),
                t,
                "{t:?}"
            );
        }
        for t in [
            Template::CreateAccount,
            Template::Faucet,
            Template::DeployContract,
            Template::CreateFundedAccount,
        ] {
            assert!(matches!(
                w.check(net.template(t).unwrap().as_bytes()),
                Err(SponsorError::NotWhitelisted { .. })
            ));
        }
        // The unresolved source, or the template for another deployment, is
        // a different script.
        let submit = Template::Submit.source().as_bytes();
        assert!(w.check(submit).is_err());
        let elsewhere = Network::named("emulator").unwrap().with_flownet_at(addr(8));
        assert!(
            w.check(elsewhere.template(Template::Submit).unwrap().as_bytes())
                .is_err()
        );
        let mut tweaked = net.template(Template::Submit).unwrap().into_bytes();
        tweaked.push(b' ');
        let err = w.check(&tweaked).unwrap_err();
        assert_eq!(
            err,
            SponsorError::NotWhitelisted {
                sha3_256: hex::encode(script_hash(&tweaked))
            }
        );
    }

    #[test]
    fn the_rate_limiter_is_a_token_bucket_per_account() {
        let mut r = RateLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            r.take(addr(1), t0).unwrap();
        }
        let Err(SponsorError::RateLimited {
            account,
            retry_after_ms,
        }) = r.take(addr(1), t0)
        else {
            panic!("the fourth transaction at once is limited");
        };
        assert_eq!(account, addr(1));
        assert_eq!(retry_after_ms, 20_000, "one token per 20 s");
        // Another account has its own bucket.
        r.take(addr(2), t0).unwrap();
        // 19 s later still nothing; 20 s later one token, not more.
        assert!(r.take(addr(1), t0 + Duration::from_secs(19)).is_err());
        r.take(addr(1), t0 + Duration::from_secs(20)).unwrap();
        assert!(r.take(addr(1), t0 + Duration::from_secs(20)).is_err());
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            r.take(addr(1), later).unwrap();
        }
        assert!(r.take(addr(1), later).is_err());
    }

    #[test]
    fn payload_signatures_are_checked_against_the_on_chain_keys() {
        let (user, sponsor) = (addr(1), addr(9));
        let key = p256();
        let accounts = HashMap::from([(user, account(user, &[(&key, 1000)]))]);

        let mut tx = submit_tx(user, sponsor);
        tx.sign_payload(user, 0, &key).unwrap();
        verify_payload_signatures(&tx, &accounts).unwrap();

        // Unsigned.
        let unsigned = submit_tx(user, sponsor);
        assert!(matches!(
            verify_payload_signatures(&unsigned, &accounts),
            Err(SponsorError::BadPayloadSignature { address, .. }) if address == user
        ));
        // Signed by another key than the account's.
        let mut forged = submit_tx(user, sponsor);
        forged.sign_payload(user, 0, &p256()).unwrap();
        assert!(matches!(
            verify_payload_signatures(&forged, &accounts),
            Err(SponsorError::BadPayloadSignature { .. })
        ));
        // A signature moved onto a changed payload.
        let mut changed = tx.clone();
        changed.arguments[0] = br#"{"type":"UInt64","value":"8"}"#.to_vec();
        assert!(verify_payload_signatures(&changed, &accounts).is_err());
        // A key of too little weight.
        let light = HashMap::from([(user, account(user, &[(&key, 500)]))]);
        assert!(verify_payload_signatures(&tx, &light).is_err());
        // A revoked key.
        let mut revoked = accounts.clone();
        revoked.get_mut(&user).unwrap().keys[0].revoked = true;
        assert!(verify_payload_signatures(&tx, &revoked).is_err());
        // An authorizer that did not sign.
        let mut two = submit_tx(user, sponsor);
        two.authorizers.push(addr(2));
        two.sign_payload(user, 0, &key).unwrap();
        let mut with_two = accounts.clone();
        with_two.insert(addr(2), account(addr(2), &[(&p256(), 1000)]));
        assert!(matches!(
            verify_payload_signatures(&two, &with_two),
            Err(SponsorError::BadPayloadSignature { address, .. }) if address == addr(2)
        ));
    }

    fn create_envelope(
        key: &flownet_core::SigningKey,
        ledger: LedgerId,
        algo: HashAlgo,
    ) -> flownet_core::Envelope {
        flownet_core::Envelope {
            ledger,
            signer: Address::derive(&key.public_key()),
            sequence: 0,
            action: Action::CreateAccount {
                public_key: key.public_key(),
                hash_algo: algo,
            },
        }
    }

    #[test]
    fn a_create_account_envelope_proves_its_key_for_this_ledger() {
        let ledger = ledger_id("flow-emulator", addr(7));
        let key = flownet_core::SigningKey::generate();
        for algo in [HashAlgo::Sha3_256, HashAlgo::Sha2_256] {
            let signed = create_envelope(&key, ledger, algo).sign_with(&key, algo);
            assert_eq!(
                check_create_account(&signed, ledger).unwrap(),
                (key.public_key(), algo)
            );
            // Signed with the other hash than the one it registers: refused.
            let other = match algo {
                HashAlgo::Sha3_256 => HashAlgo::Sha2_256,
                HashAlgo::Sha2_256 => HashAlgo::Sha3_256,
            };
            let mismatched = create_envelope(&key, ledger, algo).sign_with(&key, other);
            assert!(matches!(
                check_create_account(&mismatched, ledger),
                Err(SponsorError::BadEnvelopeSignature(a)) if a == Address::derive(&key.public_key())
            ));
        }
        // Signed by someone else for this key: no proof of holding it.
        let forged = create_envelope(&key, ledger, HashAlgo::Sha3_256)
            .sign(&flownet_core::SigningKey::generate());
        assert!(matches!(
            check_create_account(&forged, ledger),
            Err(SponsorError::BadEnvelopeSignature(_))
        ));
        // For another deployment or chain.
        let elsewhere = ledger_id("flow-testnet", addr(7));
        assert_ne!(elsewhere, ledger);
        assert_ne!(ledger_id("flow-emulator", addr(8)), ledger);
        let wrong = create_envelope(&key, elsewhere, HashAlgo::Sha3_256).sign(&key);
        assert_eq!(
            check_create_account(&wrong, ledger).unwrap_err(),
            SponsorError::WrongLedger {
                expected: ledger,
                got: elsewhere
            }
        );
        // The core's rules: the derived signer, sequence 0, create_account only.
        let mut env = create_envelope(&key, ledger, HashAlgo::Sha3_256);
        env.signer = addr(1);
        let err = check_create_account(&env.sign(&key), ledger).unwrap_err();
        assert!(
            matches!(&err, SponsorError::InvalidEnvelope(m) if m.contains("not the address of the key")),
            "{err}"
        );
        let mut env = create_envelope(&key, ledger, HashAlgo::Sha3_256);
        env.sequence = 1;
        assert!(matches!(
            check_create_account(&env.sign(&key), ledger),
            Err(SponsorError::InvalidEnvelope(_))
        ));
        let mut env = create_envelope(&key, ledger, HashAlgo::Sha3_256);
        env.action = Action::Faucet;
        assert!(matches!(
            check_create_account(&env.sign(&key), ledger),
            Err(SponsorError::InvalidEnvelope(m)) if m.contains("got faucet")
        ));
    }

    #[test]
    fn refusals_become_the_cores_errors() {
        let user = addr(1);
        assert_eq!(
            flownet_core::Error::from(SponsorError::FaucetUsed(user)),
            flownet_core::Error::Faucet(format!(
                "account {user} has already received its welcome amount"
            ))
        );
        assert_eq!(
            flownet_core::Error::from(SponsorError::BadEnvelopeSignature(user)),
            flownet_core::Error::BadSignature(user)
        );
        assert!(matches!(
            flownet_core::Error::from(SponsorError::AccountExists("account 0x1".into())),
            flownet_core::Error::AlreadyExists(_)
        ));
        assert!(matches!(
            flownet_core::Error::from(SponsorError::Execution(
                "error: pre-condition failed: faucet: this ledger has no faucet".into()
            )),
            flownet_core::Error::Faucet(_)
        ));
        assert!(matches!(
            flownet_core::Error::from(SponsorError::TooManyAccounts { retry_after_ms: 5 }),
            flownet_core::Error::Unauthorized(m) if m.contains("too many new accounts")
        ));
    }

    #[test]
    fn one_global_bucket_limits_new_accounts() {
        let mut r = RateLimiter::<()>::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        r.take_key((), t0).unwrap();
        r.take_key((), t0).unwrap();
        assert_eq!(r.take_key((), t0), Err(30_000));
        r.take_key((), t0 + Duration::from_secs(30)).unwrap();
    }

    #[test]
    fn the_faucets_sponsor_authorizes_with_its_envelope_signature_only() {
        let (user, sponsor) = (addr(1), addr(9));
        let key = p256();
        let accounts = HashMap::from([(user, account(user, &[(&key, 1000)]))]);
        let mut tx = Transaction::new(
            network().template(Template::Faucet).unwrap(),
            vec![],
            [3; 32],
            9999,
            ProposalKey {
                address: user,
                key_index: 0,
                sequence_number: 0,
            },
            sponsor,
            vec![user, sponsor],
        );
        // Only the user signs the payload; the payer-authorizer is not asked to.
        tx.sign_payload(user, 0, &key).unwrap();
        verify_payload_signatures(&tx, &accounts).unwrap();
        // A payload signature claiming to be the payer's is still refused.
        let mut doubled = tx.clone();
        doubled
            .payload_signatures
            .push(doubled.payload_signatures[0].clone());
        doubled.payload_signatures[1].address = sponsor;
        assert!(verify_payload_signatures(&doubled, &accounts).is_err());
        // And the user's signature is still required.
        tx.payload_signatures.clear();
        assert!(verify_payload_signatures(&tx, &accounts).is_err());
    }

    #[test]
    fn the_proposal_key_itself_must_sign() {
        let (user, sponsor) = (addr(1), addr(9));
        let (k0, k1) = (p256(), p256());
        let accounts = HashMap::from([(user, account(user, &[(&k0, 1000), (&k1, 1000)]))]);
        let mut tx = submit_tx(user, sponsor);
        tx.sign_payload(user, 1, &k1).unwrap();
        let err = verify_payload_signatures(&tx, &accounts).unwrap_err();
        assert!(err.to_string().contains("proposal key 0"), "{err}");
        tx.sign_payload(user, 0, &k0).unwrap();
        verify_payload_signatures(&tx, &accounts).unwrap();
    }

    fn sponsor_at(payer: &FlowSigner, policy: &SponsorPolicy) -> Sponsor {
        // Nothing listens there: these checks must refuse before any call.
        let client = AccessClient::connect_lazy("http://127.0.0.1:1").unwrap();
        Sponsor::new(
            client,
            payer.clone(),
            Whitelist::for_network(&network()).unwrap(),
            policy,
        )
    }

    #[tokio::test]
    async fn sign_only_refuses_a_script_that_is_not_a_template_before_any_call() {
        let (user, payer) = (addr(1), FlowSigner::new(addr(9), 0, p256()));
        let sponsor = sponsor_at(&payer, &SponsorPolicy::default());
        let key = p256();
        let mut tx = submit_tx(user, payer.address);
        tx.script = b"transaction { prepare(a: auth(Storage) &Account) { } }".to_vec();
        tx.sign_payload(user, 0, &key).unwrap();
        let err = sponsor.sign_envelope(tx.clone()).await.unwrap_err();
        assert!(
            matches!(err, SponsorError::NotWhitelisted { ref sha3_256 } if *sha3_256 == hex::encode(script_hash(&tx.script))),
            "{err}"
        );
        // The sponsor as a signer, or another payer, is refused the same way.
        let mut as_signer = submit_tx(payer.address, payer.address);
        as_signer.authorizers = vec![payer.address];
        assert_eq!(
            sponsor.sign_envelope(as_signer).await.unwrap_err(),
            SponsorError::SponsorAsSigner(payer.address)
        );
        let other = submit_tx(user, addr(8));
        assert!(matches!(
            sponsor.sign_envelope(other).await.unwrap_err(),
            SponsorError::PayerMismatch { .. }
        ));
        let mut heavy = submit_tx(user, payer.address);
        heavy.gas_limit = 10_000;
        assert!(matches!(
            sponsor.sign_envelope(heavy).await.unwrap_err(),
            SponsorError::GasLimit { got: 10_000, .. }
        ));
    }

    #[tokio::test]
    async fn many_authorizers_or_missing_signatures_are_refused_before_any_lookup() {
        let (user, payer) = (addr(1), FlowSigner::new(addr(9), 0, p256()));
        let sponsor = sponsor_at(&payer, &SponsorPolicy::default());
        let key = p256();
        let mut crowd = submit_tx(user, payer.address);
        crowd.authorizers = (10..60).map(addr).collect();
        crowd.sign_payload(user, 0, &key).unwrap();
        let err = sponsor.sign_envelope(crowd).await.unwrap_err();
        assert!(err.to_string().contains("authorizers"), "{err}");
        let unsigned = submit_tx(user, payer.address);
        assert!(matches!(
            sponsor.sign_envelope(unsigned).await.unwrap_err(),
            SponsorError::BadPayloadSignature { address, .. } if address == user
        ));
    }

    #[tokio::test]
    async fn sign_only_signs_the_envelope_of_a_well_signed_template_only() {
        let user = addr(1);
        let payer = FlowSigner::new(addr(9), 0, p256());
        let policy = SponsorPolicy {
            burst: 1,
            ..SponsorPolicy::default()
        };
        let sponsor = sponsor_at(&payer, &policy);
        let key = p256();
        let accounts = HashMap::from([(user, account(user, &[(&key, 1000)]))]);

        // A payload signed by another key than the account's: refused, and the
        // forger spends nothing of the user's rate limit.
        let mut forged = submit_tx(user, payer.address);
        forged.sign_payload(user, 0, &p256()).unwrap();
        assert!(matches!(
            sponsor.sign_checked(forged, &accounts).unwrap_err(),
            SponsorError::BadPayloadSignature { address, .. } if address == user
        ));

        let mut tx = submit_tx(user, payer.address);
        tx.sign_payload(user, 0, &key).unwrap();
        let signed = sponsor.sign_checked(tx.clone(), &accounts).unwrap();
        assert_eq!(signed.payload_signatures, tx.payload_signatures);
        assert_eq!(signed.envelope_signatures.len(), 1);
        let s = &signed.envelope_signatures[0];
        assert_eq!((s.address, s.key_index), (payer.address, 0));
        let tag = keys::padded_tag(keys::TRANSACTION_DOMAIN_TAG);
        assert!(keys::verify(
            SignatureAlgorithm::EcdsaP256,
            HashAlgorithm::Sha3_256,
            &payer.key.public_key(),
            &tag,
            &signed.envelope_message().unwrap(),
            &s.signature,
        ));
        // Signing only still counts against the proposer's budget.
        assert!(matches!(
            sponsor.sign_checked(tx, &accounts).unwrap_err(),
            SponsorError::RateLimited { account, .. } if account == user
        ));
    }
}
