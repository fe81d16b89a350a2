//! A gRPC client of the Flow Access API (tonic, with the hand-written messages
//! of [`super::proto`]): blocks, accounts, transactions, scripts and events.

use std::time::Duration;

use flownet_core::Address;
use tonic::{
    client::Grpc,
    codegen::http::uri::PathAndQuery,
    transport::{Channel, Endpoint},
};

use super::{
    FlowError, Result, Transaction, Value,
    keys::{HashAlgorithm, SignatureAlgorithm},
    proto,
};

/// What the client needs of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    pub id: [u8; 32],
    pub height: u64,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
}

/// One key of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountKey {
    pub index: u32,
    pub public_key: Vec<u8>,
    pub signature_algorithm: Option<SignatureAlgorithm>,
    pub hash_algorithm: Option<HashAlgorithm>,
    pub weight: u32,
    pub sequence_number: u64,
    pub revoked: bool,
}

/// An account as the Access API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowAccountInfo {
    pub address: Address,
    /// FLOW balance in units of 10⁻⁸.
    pub balance: u64,
    pub keys: Vec<AccountKey>,
    pub contracts: Vec<String>,
}

/// An event with its decoded JSON-Cadence payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub r#type: String,
    pub transaction_id: [u8; 32],
    pub event_index: u32,
    pub value: Value,
}

/// Where a transaction stands.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionResult {
    pub id: [u8; 32],
    pub status: i32,
    /// Empty when the transaction succeeded.
    pub error_message: String,
    pub events: Vec<Event>,
    pub block_id: [u8; 32],
    pub block_height: u64,
    pub computation_used: u64,
}

impl TransactionResult {
    pub fn is_sealed(&self) -> bool {
        self.status == proto::transaction_status::SEALED
    }
}

/// The events of one block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockEvents {
    pub block_height: u64,
    pub block_timestamp: u64,
    pub events: Vec<Event>,
}

/// A connection to one Access node.
#[derive(Debug, Clone)]
pub struct AccessClient {
    grpc: Grpc<Channel>,
    endpoint: String,
}

fn id32(bytes: &[u8], what: &str) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| FlowError::Access(format!("{what} is {} bytes, not 32", bytes.len())))
}

fn status_error(endpoint: &str, method: &str, s: tonic::Status) -> FlowError {
    FlowError::Access(format!(
        "{method} at {endpoint}: {} ({:?})",
        s.message(),
        s.code()
    ))
}

fn decode_event(e: proto::Event) -> Result<Event> {
    Ok(Event {
        value: Value::from_json(&e.payload)?,
        transaction_id: id32(&e.transaction_id, "event transaction id")?,
        event_index: e.event_index,
        r#type: e.r#type,
    })
}

impl AccessClient {
    /// Connects to `endpoint` (`http://host:port`, the node's gRPC port).
    pub async fn connect(endpoint: &str) -> Result<Self> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| {
                FlowError::Config(format!("invalid access api endpoint {endpoint:?}: {e}"))
            })?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .connect()
            .await
            .map_err(|e| FlowError::Access(format!("cannot connect to {endpoint}: {e}")))?;
        // Script results listing every task can be large.
        let grpc = Grpc::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(16 << 20);
        Ok(Self {
            grpc,
            endpoint: endpoint.to_owned(),
        })
    }

    /// A client for `endpoint` that connects on its first call, not now: for
    /// services that start before their node and for tests of the checks a
    /// caller runs before any call. Must be called within a tokio runtime.
    pub fn connect_lazy(endpoint: &str) -> Result<Self> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| {
                FlowError::Config(format!("invalid access api endpoint {endpoint:?}: {e}"))
            })?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .connect_lazy();
        let grpc = Grpc::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(16 << 20);
        Ok(Self {
            grpc,
            endpoint: endpoint.to_owned(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn unary<Req, Resp>(
        &self,
        method: &'static str,
        request: Req,
    ) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = PathAndQuery::from_static(method);
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        Ok(grpc
            .unary(tonic::Request::new(request), path, codec)
            .await?
            .into_inner())
    }

    async fn call<Req, Resp>(&self, method: &'static str, request: Req) -> Result<Resp>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.unary(method, request)
            .await
            .map_err(|s| status_error(&self.endpoint, method, s))
    }

    pub async fn ping(&self) -> Result<()> {
        self.call::<_, proto::PingResponse>("/flow.access.AccessAPI/Ping", proto::PingRequest {})
            .await
            .map(|_| ())
    }

    /// The chain id: `flow-emulator`, `flow-testnet`, `flow-mainnet`.
    pub async fn chain_id(&self) -> Result<String> {
        let r: proto::GetNetworkParametersResponse = self
            .call(
                "/flow.access.AccessAPI/GetNetworkParameters",
                proto::GetNetworkParametersRequest {},
            )
            .await?;
        Ok(r.chain_id)
    }

    fn header(r: proto::BlockHeaderResponse) -> Result<BlockHeader> {
        let b = r
            .block
            .ok_or_else(|| FlowError::Access("block header response without a block".into()))?;
        Ok(BlockHeader {
            id: id32(&b.id, "block id")?,
            height: b.height,
            timestamp: b.timestamp.map_or(0, |t| t.seconds.max(0) as u64),
        })
    }

    /// The latest sealed block (or the latest finalized one).
    pub async fn latest_block(&self, sealed: bool) -> Result<BlockHeader> {
        let r = self
            .call(
                "/flow.access.AccessAPI/GetLatestBlockHeader",
                proto::GetLatestBlockHeaderRequest { is_sealed: sealed },
            )
            .await?;
        Self::header(r)
    }

    pub async fn block_by_id(&self, id: [u8; 32]) -> Result<BlockHeader> {
        let r = self
            .call(
                "/flow.access.AccessAPI/GetBlockHeaderByID",
                proto::GetBlockHeaderByIdRequest { id: id.to_vec() },
            )
            .await?;
        Self::header(r)
    }

    /// The account at `address`, or `None` when it does not exist.
    pub async fn account(&self, address: Address) -> Result<Option<FlowAccountInfo>> {
        let method = "/flow.access.AccessAPI/GetAccountAtLatestBlock";
        let r: proto::AccountResponse = match self
            .unary(
                method,
                proto::GetAccountAtLatestBlockRequest {
                    address: address.0.to_vec(),
                },
            )
            .await
        {
            Ok(r) => r,
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
            // Some access nodes answer a missing account with a generic error.
            Err(s) if s.message().contains("could not find account") => return Ok(None),
            Err(s) => return Err(status_error(&self.endpoint, method, s)),
        };
        let Some(a) = r.account else {
            return Ok(None);
        };
        let mut contracts: Vec<String> = a.contracts.into_keys().collect();
        contracts.sort();
        Ok(Some(FlowAccountInfo {
            address,
            balance: a.balance,
            keys: a
                .keys
                .into_iter()
                .map(|k| AccountKey {
                    index: k.index,
                    public_key: k.public_key,
                    signature_algorithm: SignatureAlgorithm::from_code(k.sign_algo).ok(),
                    hash_algorithm: HashAlgorithm::from_code(k.hash_algo).ok(),
                    weight: k.weight,
                    sequence_number: u64::from(k.sequence_number),
                    revoked: k.revoked,
                })
                .collect(),
            contracts,
        }))
    }

    /// Submits a signed transaction and returns its id.
    pub async fn send_transaction(&self, tx: &Transaction) -> Result<[u8; 32]> {
        let sig = |s: &super::TxSignature| proto::TransactionSignature {
            address: s.address.0.to_vec(),
            key_id: s.key_index,
            signature: s.signature.clone(),
        };
        let message = proto::Transaction {
            script: tx.script.clone(),
            arguments: tx.arguments.clone(),
            reference_block_id: tx.reference_block_id.to_vec(),
            gas_limit: tx.gas_limit,
            proposal_key: Some(proto::TransactionProposalKey {
                address: tx.proposal_key.address.0.to_vec(),
                key_id: tx.proposal_key.key_index,
                sequence_number: tx.proposal_key.sequence_number,
            }),
            payer: tx.payer.0.to_vec(),
            authorizers: tx.authorizers.iter().map(|a| a.0.to_vec()).collect(),
            payload_signatures: tx.payload_signatures.iter().map(sig).collect(),
            envelope_signatures: tx.envelope_signatures.iter().map(sig).collect(),
        };
        let r: proto::SendTransactionResponse = self
            .call(
                "/flow.access.AccessAPI/SendTransaction",
                proto::SendTransactionRequest {
                    transaction: Some(message),
                },
            )
            .await?;
        id32(&r.id, "transaction id")
    }

    pub async fn transaction_result(&self, id: [u8; 32]) -> Result<TransactionResult> {
        let r: proto::TransactionResultResponse = self
            .call(
                "/flow.access.AccessAPI/GetTransactionResult",
                proto::GetTransactionRequest {
                    id: id.to_vec(),
                    event_encoding_version: proto::EVENT_ENCODING_JSON_CDC_V0,
                },
            )
            .await?;
        Ok(TransactionResult {
            id,
            status: r.status,
            error_message: r.error_message,
            events: r
                .events
                .into_iter()
                .map(decode_event)
                .collect::<Result<_>>()?,
            block_id: if r.block_id.is_empty() {
                [0; 32]
            } else {
                id32(&r.block_id, "block id")?
            },
            block_height: r.block_height,
            computation_used: r.computation_usage,
        })
    }

    /// Polls until the transaction is sealed (or expired), every `interval`,
    /// for at most `timeout`.
    pub async fn wait_sealed(
        &self,
        id: [u8; 32],
        interval: Duration,
        timeout: Duration,
    ) -> Result<TransactionResult> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = self.transaction_result(id).await?;
            if r.is_sealed() {
                return Ok(r);
            }
            if r.status == proto::transaction_status::EXPIRED {
                return Err(FlowError::Access(format!(
                    "transaction {} expired before it was sealed",
                    hex::encode(id)
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(FlowError::Access(format!(
                    "transaction {} not sealed after {timeout:?} (status {})",
                    hex::encode(id),
                    r.status
                )));
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Runs a script at the latest sealed block and decodes its result.
    pub async fn execute_script(&self, script: &[u8], arguments: &[Value]) -> Result<Value> {
        let r: proto::ExecuteScriptResponse = self
            .call(
                "/flow.access.AccessAPI/ExecuteScriptAtLatestBlock",
                proto::ExecuteScriptAtLatestBlockRequest {
                    script: script.to_vec(),
                    arguments: arguments.iter().map(Value::to_json_bytes).collect(),
                },
            )
            .await?;
        Value::from_json(&r.value)
    }

    /// Events of `event_type` in blocks `start..=end`.
    pub async fn events(&self, event_type: &str, start: u64, end: u64) -> Result<Vec<BlockEvents>> {
        let r: proto::EventsResponse = self
            .call(
                "/flow.access.AccessAPI/GetEventsForHeightRange",
                proto::GetEventsForHeightRangeRequest {
                    r#type: event_type.to_owned(),
                    start_height: start,
                    end_height: end,
                    event_encoding_version: proto::EVENT_ENCODING_JSON_CDC_V0,
                },
            )
            .await?;
        r.results
            .into_iter()
            .map(|b| {
                Ok(BlockEvents {
                    block_height: b.block_height,
                    block_timestamp: b.block_timestamp.map_or(0, |t| t.seconds.max(0) as u64),
                    events: b
                        .events
                        .into_iter()
                        .map(decode_event)
                        .collect::<Result<_>>()?,
                })
            })
            .collect()
    }
}
