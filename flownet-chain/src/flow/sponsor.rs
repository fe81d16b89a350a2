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

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use flownet_core::Address;

use super::{
    Transaction,
    access::{AccessClient, FlowAccountInfo},
    keys::{self, HashAlgorithm},
    ledger::FlowSigner,
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
}

impl From<SponsorError> for flownet_core::Error {
    fn from(e: SponsorError) -> Self {
        match e {
            SponsorError::BadPayloadSignature { address, .. } => Self::BadSignature(address),
            SponsorError::Access(m) => Self::Network(m),
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
    /// Checks `tx` as [`Payer::pay`] does and signs its envelope, without
    /// sending it: for clients that send the transaction themselves (the web
    /// page through FCL). Returns `tx` with the payer's envelope signature.
    async fn sign_envelope(&self, tx: Transaction) -> Result<Transaction, SponsorError>;
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

/// A token bucket per account: `burst` transactions at once, refilled at
/// `burst` per `period`.
#[derive(Debug)]
pub struct RateLimiter {
    burst: u32,
    period: Duration,
    buckets: HashMap<Address, (f64, Instant)>,
}

impl RateLimiter {
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

    /// Takes one token of `account`'s bucket at `now`, or says how long until
    /// one is back.
    pub fn take(&mut self, account: Address, now: Instant) -> Result<(), SponsorError> {
        let burst = f64::from(self.burst);
        let per_second = burst / self.period.as_secs_f64();
        let (tokens, last) = self.buckets.entry(account).or_insert((burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * per_second).min(burst);
        *last = now.max(*last);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - *tokens) / per_second;
            Err(SponsorError::RateLimited {
                account,
                retry_after_ms: (wait * 1000.0).ceil() as u64,
            })
        }
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

/// Pays for the project's own transactions; see the module documentation.
#[derive(Debug)]
pub struct Sponsor {
    client: AccessClient,
    payer: FlowSigner,
    whitelist: Whitelist,
    max_gas_limit: u64,
    limiter: Mutex<RateLimiter>,
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
        }
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
