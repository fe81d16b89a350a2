//! A real IPFS node (kubo, or anything that speaks its HTTP RPC) as a second home for
//! blobs: a node or gateway started with `--ipfs-api URL` adds every blob it stores
//! there, pinned, as one raw block whose CID holds the ledger's SHA-256
//! ([`flownet_core::cid`]), and readers that find a blob nowhere else get it from
//! there. The IPFS node finds blocks it lacks on its peers, so an output outlives the
//! node that made it.
//!
//! Every block read is checked against the SHA-256 it was asked for before anyone sees
//! it: an IPFS node is a route for bytes, never trusted with them.

use std::time::Duration;

use flownet_core::{Digest32, Endpoint, Error, Result, cid, crypto};

use crate::fetch::{FetchPolicy, read_limited};

/// How long one IPFS request may take; a block no peer has is searched for this long.
pub const IPFS_TIMEOUT: Duration = Duration::from_secs(30);

/// An IPFS node's HTTP RPC API (`/api/v0/…`), as configured by the operator.
#[derive(Debug, Clone)]
pub struct Ipfs {
    api: Endpoint,
    agent: ureq::Agent,
    timeout: Duration,
}

impl Ipfs {
    /// The API at `api`: an `http://host:port` URL, or the multiaddr kubo writes to its
    /// `api` file and prints (`/ip4/127.0.0.1/tcp/5001`). The operator chose it, so
    /// loopback and private addresses are allowed.
    pub fn new(api: &str) -> Result<Self> {
        Self::with_timeout(api, IPFS_TIMEOUT)
    }

    /// [`Ipfs::new`] whose requests end after `timeout`.
    pub fn with_timeout(api: &str, timeout: Duration) -> Result<Self> {
        let url = multiaddr_to_url(api.trim()).unwrap_or_else(|| api.trim().to_owned());
        let api = Endpoint::parse(&url).map_err(|_| {
            Error::InvalidInput(format!(
                "--ipfs-api must be an http://host:port URL or a /ip4/…/tcp/PORT multiaddr, not {api:?}"
            ))
        })?;
        if api.scheme() != flownet_core::endpoint::Scheme::Http {
            return Err(Error::InvalidInput(
                "the IPFS API is reached over http:// (it listens on loopback or a private network)".into(),
            ));
        }
        Ok(Self {
            api,
            agent: FetchPolicy::ANY.agent(timeout + Duration::from_secs(5)),
            timeout,
        })
    }

    /// The API's base URL, for messages.
    pub fn api(&self) -> String {
        self.api.to_string()
    }

    fn rpc(&self, command: &[&str], query: &str, timeout: Duration) -> String {
        let mut segments = vec!["api", "v0"];
        segments.extend_from_slice(command);
        let url = self.api.url(&segments).unwrap_or_default();
        // kubo's own deadline, a little before the client's: it answers with why.
        format!("{url}?{query}&timeout={}ms", timeout.as_millis().max(1))
    }

    fn failed(&self, what: &str, why: impl std::fmt::Display) -> Error {
        Error::Network(format!("IPFS at {}: {what}: {why}", self.api()))
    }

    /// Adds `bytes` as one raw block, pinned, and returns its CID (which names their
    /// SHA-256). Blobs over [`cid::MAX_BLOCK_BYTES`] are not added (they have no CID).
    pub fn add(&self, bytes: &[u8]) -> Result<String> {
        let sha = crypto::sha256(bytes);
        let want = cid::cid_of(&sha, bytes.len() as u64).ok_or_else(|| {
            Error::InvalidInput(format!(
                "a blob of {} bytes is more than one IPFS block ({} bytes)",
                bytes.len(),
                cid::MAX_BLOCK_BYTES
            ))
        })?;
        const BOUNDARY: &str = "flownet-block-7d1f3a9c";
        let mut body = Vec::with_capacity(bytes.len() + 256);
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let url = self.rpc(
            &["block", "put"],
            "cid-codec=raw&mhtype=sha2-256&mhlen=32&pin=true",
            self.timeout,
        );
        let mut response = self
            .agent
            .post(&url)
            .header(
                "Content-Type",
                &format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .send(&body[..])
            .map_err(|e| self.failed("cannot add a block", e))?;
        let status = response.status();
        let text = read_limited(response.body_mut(), 64 * 1024)
            .map_err(|e| self.failed("cannot read its answer to block/put", e))?;
        if status != 200 {
            return Err(self.failed("block/put failed", kubo_message(status.as_u16(), &text)));
        }
        let key = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("Key").and_then(|k| k.as_str()).map(str::to_owned))
            .ok_or_else(|| self.failed("block/put answered", "not the JSON of a block"))?;
        // kubo prints CIDv1 in base32; compare what it names, whatever the base.
        if cid::parse_raw_cid(&key).ok() != Some(sha) {
            return Err(self.failed(
                "block/put",
                format!("stored the block as {key}, not as {want}"),
            ));
        }
        Ok(want)
    }

    /// The blob with this SHA-256 from IPFS (the node's own store or its peers), at
    /// most `max_bytes` long, checked against the SHA-256 before it is returned.
    pub fn get(&self, sha256: &Digest32, max_bytes: u64) -> Result<Vec<u8>> {
        self.get_within(sha256, max_bytes, self.timeout)
    }

    /// [`Ipfs::get`] ending after `within` (a caller's own deadline) when that is
    /// sooner than this client's timeout.
    pub fn get_within(
        &self,
        sha256: &Digest32,
        max_bytes: u64,
        within: Duration,
    ) -> Result<Vec<u8>> {
        let timeout = within.min(self.timeout);
        let cid = cid::raw_cid(sha256);
        let url = self.rpc(&["block", "get"], &format!("arg={cid}"), timeout);
        let mut response = self
            .agent
            .post(&url)
            .config()
            .timeout_global(Some(timeout + Duration::from_secs(1)))
            .build()
            .send_empty()
            .map_err(|e| self.failed(&format!("cannot get {cid}"), e))?;
        let status = response.status();
        let limit = max_bytes.min(cid::MAX_BLOCK_BYTES);
        let bytes = read_limited(response.body_mut(), limit.max(64 * 1024))
            .map_err(|e| self.failed(&format!("cannot read {cid}"), e))?;
        if status != 200 {
            return Err(self.failed(
                &format!("does not give {cid}"),
                kubo_message(status.as_u16(), &bytes),
            ));
        }
        if bytes.len() as u64 > limit || crypto::sha256(&bytes) != *sha256 {
            return Err(Error::Blob(format!(
                "IPFS at {} answered {cid} with bytes that are not sha256:{sha256} (hash or size differs); nothing was accepted",
                self.api()
            )));
        }
        Ok(bytes)
    }
}

/// Why neither the holder nor IPFS gave a blob: one network error naming both.
pub(crate) fn neither(holder: &Error, ipfs: &Error) -> Error {
    let text = |e: &Error| {
        let s = e.to_string();
        s.strip_prefix("network: ").map_or(s.clone(), str::to_owned)
    };
    Error::Network(format!("{}; and {}", text(holder), text(ipfs)))
}

/// kubo's error answer (`{"Message": …}`), or the status.
fn kubo_message(status: u16, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("Message").and_then(|m| m.as_str()).map(str::to_owned))
        .map_or_else(
            || format!("answered {status}"),
            |m| format!("{m} ({status})"),
        )
}

/// `http://A:P` for `/ip4/A/tcp/P`, `/ip6/A/tcp/P` or `/dns…/H/tcp/P` (with an optional
/// trailing `/http`).
fn multiaddr_to_url(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.strip_prefix('/')?.split('/').collect();
    let (proto, host, port) = match parts.as_slice() {
        [proto, host, "tcp", port] | [proto, host, "tcp", port, "http"] => (*proto, *host, *port),
        _ => return None,
    };
    port.parse::<u16>().ok()?;
    match proto {
        "ip4" | "dns" | "dns4" | "dns6" => Some(format!("http://{host}:{port}")),
        "ip6" => Some(format!("http://[{host}]:{port}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_is_a_url_or_a_multiaddr() {
        assert_eq!(
            Ipfs::new("/ip4/127.0.0.1/tcp/5001").unwrap().api(),
            "http://127.0.0.1:5001"
        );
        assert_eq!(
            Ipfs::new("/ip6/::1/tcp/5001").unwrap().api(),
            "http://[::1]:5001"
        );
        assert_eq!(
            Ipfs::new("http://127.0.0.1:5001/").unwrap().api(),
            "http://127.0.0.1:5001"
        );
        for bad in [
            "",
            "127.0.0.1:5001",
            "/ip4/127.0.0.1/udp/5001",
            "ftp://h",
            "https://h:5001",
        ] {
            assert!(Ipfs::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_blob_over_one_block_is_not_added() {
        let ipfs = Ipfs::new("http://127.0.0.1:9").unwrap();
        let big = vec![0u8; cid::MAX_BLOCK_BYTES as usize + 1];
        assert!(
            ipfs.add(&big)
                .unwrap_err()
                .to_string()
                .contains("more than one IPFS block")
        );
    }

    #[test]
    fn an_ipfs_node_that_is_down_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ipfs = Ipfs::with_timeout(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2))
            .unwrap();
        let e = ipfs.get(&crypto::sha256(b"x"), 10).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "IPFS at http://127.0.0.1:{port}: cannot get bafkrei"
            )),
            "{e}"
        );
        let e = ipfs.add(b"x").unwrap_err().to_string();
        assert!(e.contains("cannot add a block"), "{e}");
    }
}

#[cfg(test)]
#[path = "ipfs_kubo_tests.rs"]
mod kubo_tests;
