//! The Flow Access API messages this client uses, written by hand with the
//! protocol's field numbers (`flow/access/access.proto` and
//! `flow/entities/*.proto` of the onflow/flow repository), so the build needs
//! neither `protoc` nor a copy of the upstream files. Fields the client never
//! reads are left out: protobuf skips unknown fields.

#![allow(missing_docs)]

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

// --- flow.entities ---------------------------------------------------------------

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockHeader {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub parent_id: Vec<u8>,
    #[prost(uint64, tag = "3")]
    pub height: u64,
    #[prost(message, optional, tag = "4")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "11")]
    pub chain_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AccountKey {
    #[prost(uint32, tag = "1")]
    pub index: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub public_key: Vec<u8>,
    #[prost(uint32, tag = "3")]
    pub sign_algo: u32,
    #[prost(uint32, tag = "4")]
    pub hash_algo: u32,
    #[prost(uint32, tag = "5")]
    pub weight: u32,
    #[prost(uint32, tag = "6")]
    pub sequence_number: u32,
    #[prost(bool, tag = "7")]
    pub revoked: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Account {
    #[prost(bytes = "vec", tag = "1")]
    pub address: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub balance: u64,
    #[prost(message, repeated, tag = "4")]
    pub keys: Vec<AccountKey>,
    #[prost(map = "string, bytes", tag = "5")]
    pub contracts: std::collections::HashMap<String, Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TransactionProposalKey {
    #[prost(bytes = "vec", tag = "1")]
    pub address: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub key_id: u32,
    #[prost(uint64, tag = "3")]
    pub sequence_number: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TransactionSignature {
    #[prost(bytes = "vec", tag = "1")]
    pub address: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub key_id: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub signature: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Transaction {
    #[prost(bytes = "vec", tag = "1")]
    pub script: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub arguments: Vec<Vec<u8>>,
    #[prost(bytes = "vec", tag = "3")]
    pub reference_block_id: Vec<u8>,
    #[prost(uint64, tag = "4")]
    pub gas_limit: u64,
    #[prost(message, optional, tag = "5")]
    pub proposal_key: Option<TransactionProposalKey>,
    #[prost(bytes = "vec", tag = "6")]
    pub payer: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub authorizers: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "8")]
    pub payload_signatures: Vec<TransactionSignature>,
    #[prost(message, repeated, tag = "9")]
    pub envelope_signatures: Vec<TransactionSignature>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(bytes = "vec", tag = "2")]
    pub transaction_id: Vec<u8>,
    #[prost(uint32, tag = "3")]
    pub transaction_index: u32,
    #[prost(uint32, tag = "4")]
    pub event_index: u32,
    #[prost(bytes = "vec", tag = "5")]
    pub payload: Vec<u8>,
}

/// `flow.entities.TransactionStatus`.
pub mod transaction_status {
    pub const UNKNOWN: i32 = 0;
    pub const PENDING: i32 = 1;
    pub const FINALIZED: i32 = 2;
    pub const EXECUTED: i32 = 3;
    pub const SEALED: i32 = 4;
    pub const EXPIRED: i32 = 5;
}

/// `flow.entities.EventEncodingVersion.JSON_CDC_V0`: ask for JSON-Cadence payloads.
pub const EVENT_ENCODING_JSON_CDC_V0: i32 = 0;

// --- flow.access -------------------------------------------------------------------

#[derive(Clone, PartialEq, prost::Message)]
pub struct PingRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PingResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetNetworkParametersRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetNetworkParametersResponse {
    #[prost(string, tag = "1")]
    pub chain_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetLatestBlockHeaderRequest {
    #[prost(bool, tag = "1")]
    pub is_sealed: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetBlockHeaderByIdRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockHeaderResponse {
    #[prost(message, optional, tag = "1")]
    pub block: Option<BlockHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetAccountAtLatestBlockRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub address: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AccountResponse {
    #[prost(message, optional, tag = "1")]
    pub account: Option<Account>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SendTransactionRequest {
    #[prost(message, optional, tag = "1")]
    pub transaction: Option<Transaction>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SendTransactionResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetTransactionRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(int32, tag = "4")]
    pub event_encoding_version: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TransactionResultResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
    #[prost(uint32, tag = "2")]
    pub status_code: u32,
    #[prost(string, tag = "3")]
    pub error_message: String,
    #[prost(message, repeated, tag = "4")]
    pub events: Vec<Event>,
    #[prost(bytes = "vec", tag = "5")]
    pub block_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    pub transaction_id: Vec<u8>,
    #[prost(uint64, tag = "8")]
    pub block_height: u64,
    #[prost(uint64, tag = "10")]
    pub computation_usage: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecuteScriptAtLatestBlockRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub script: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub arguments: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecuteScriptResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetEventsForHeightRangeRequest {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(uint64, tag = "2")]
    pub start_height: u64,
    #[prost(uint64, tag = "3")]
    pub end_height: u64,
    #[prost(int32, tag = "4")]
    pub event_encoding_version: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EventsResponseResult {
    #[prost(bytes = "vec", tag = "1")]
    pub block_id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub block_height: u64,
    #[prost(message, repeated, tag = "3")]
    pub events: Vec<Event>,
    #[prost(message, optional, tag = "4")]
    pub block_timestamp: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EventsResponse {
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<EventsResponseResult>,
}
