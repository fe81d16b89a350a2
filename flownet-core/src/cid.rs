//! IPFS content identifiers for FlowNet's blobs.
//!
//! A blob of at most [`MAX_BLOCK_BYTES`] is one IPFS block of the `raw` codec, and its
//! CID (version 1, `raw`, `sha2-256`) holds the very SHA-256 the ledger records: the CID
//! is computed from the ledger alone, with no new field on it. Written in multibase
//! base32 (lowercase, unpadded) it starts `bafkrei`, as `ipfs add --cid-version=1
//! --raw-leaves` prints for a small file.
//!
//! A larger blob has no CID here: IPFS moves blocks of up to 1 MiB between peers, and a
//! larger file becomes a UnixFS DAG whose root hash is not the SHA-256 on the ledger, so
//! it could not be found from the ledger. Such a blob stays with its holder's HTTP
//! server. (Outputs and inputs of the models served today are far below the limit: a
//! chat, a 128 px PNG, a classification, a camera photo resized by its page.)
//!
//! Whatever route bytes take, readers still check them against the SHA-256 and size on
//! the ledger ([`crate::OutputRef::check`], [`crate::InputRef::check`]).

use crate::{Digest32, Error, Result};

/// Largest blob that is one IPFS block: kubo's `block put` limit, and what every IPFS
/// implementation exchanges.
pub const MAX_BLOCK_BYTES: u64 = 1024 * 1024;

/// The multicodec of raw bytes.
const RAW: u8 = 0x55;
/// The multihash code of SHA-256 and its digest length.
const SHA2_256: u8 = 0x12;
const SHA2_256_LEN: u8 = 32;
/// CID version 1.
const V1: u8 = 0x01;

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The CID of the one raw block holding bytes with this SHA-256: `b` + base32 of
/// `01 55 12 20 <sha256>`.
pub fn raw_cid(sha256: &Digest32) -> String {
    let mut bytes = Vec::with_capacity(36);
    bytes.extend_from_slice(&[V1, RAW, SHA2_256, SHA2_256_LEN]);
    bytes.extend_from_slice(&sha256.0);
    let mut out = String::with_capacity(1 + (bytes.len() * 8).div_ceil(5));
    out.push('b');
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The CID of a blob of `size` bytes with this SHA-256, when it is one block.
pub fn cid_of(sha256: &Digest32, size: u64) -> Option<String> {
    (size <= MAX_BLOCK_BYTES).then(|| raw_cid(sha256))
}

/// The SHA-256 a CID names, for a CIDv1 of the `raw` codec with a `sha2-256` multihash
/// in base32 (`b…`, `B…`) or base16 (`f…`, `F…`): the only CIDs FlowNet's blobs have.
/// Anything else (a CIDv0 `Qm…`, a UnixFS root, another hash) is refused with the reason.
pub fn parse_raw_cid(cid: &str) -> Result<Digest32> {
    let bad = |why: &str| Error::InvalidInput(format!("not a FlowNet blob CID ({why}): {cid:?}"));
    if cid.len() > 128 {
        return Err(bad("too long"));
    }
    let mut chars = cid.chars();
    let bytes = match chars.next() {
        Some('b' | 'B') => decode_base32(chars.as_str()).ok_or_else(|| bad("bad base32"))?,
        Some('f' | 'F') => hex::decode(chars.as_str()).map_err(|_| bad("bad base16"))?,
        Some('Q') => return Err(bad("a CIDv0 names a UnixFS file, not a raw block")),
        _ => return Err(bad("multibase base32 (b…) or base16 (f…) expected")),
    };
    match bytes.as_slice() {
        [V1, RAW, SHA2_256, SHA2_256_LEN, digest @ ..] if digest.len() == 32 => {
            let mut d = [0u8; 32];
            d.copy_from_slice(digest);
            Ok(Digest32(d))
        }
        [V1, RAW, ..] => Err(bad("its hash is not a sha2-256 of 32 bytes")),
        [V1, ..] => Err(bad("its codec is not raw")),
        _ => Err(bad("not a version 1 CID")),
    }
}

/// Adds `"cid"` beside every blob reference in a JSON view (an object with `sha256`,
/// `size` and `uri`: a task's `input` and `result`, an NFT's `output`), at any depth,
/// where the blob is one block. How the CLI's `--json`, the Python API and the gateway
/// show CIDs without a new field on the ledger.
pub fn add_cids(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let sha = map
                .get("sha256")
                .and_then(|s| s.as_str())
                .and_then(|s| Digest32::from_hex(s).ok());
            let size = map.get("size").and_then(|s| s.as_u64());
            if let (Some(sha), Some(size), true) = (sha, size, map.contains_key("uri"))
                && let Some(cid) = cid_of(&sha, size)
            {
                map.insert("cid".into(), cid.into());
            }
            map.values_mut().for_each(add_cids);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(add_cids),
        _ => {}
    }
}

fn decode_base32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c.to_ascii_lowercase() {
            c @ b'a'..=b'z' => c - b'a',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    // Unpadded base32: the leftover bits are fewer than a byte and zero.
    (bits < 5 && acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sha256;

    #[test]
    fn the_cid_of_the_empty_block_is_the_well_known_one() {
        // `ipfs add --cid-version=1 --raw-leaves` of an empty file.
        assert_eq!(
            raw_cid(&sha256(b"")),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }

    #[test]
    fn cids_round_trip_in_both_bases_and_cases() {
        for data in [&b""[..], b"hello", &[0xff; 1000]] {
            let d = sha256(data);
            let cid = raw_cid(&d);
            assert!(cid.starts_with("bafkrei") && cid.len() == 59, "{cid}");
            assert_eq!(parse_raw_cid(&cid).unwrap(), d);
            assert_eq!(parse_raw_cid(&cid.to_uppercase()).unwrap(), d);
            assert_eq!(
                parse_raw_cid(&format!("f01551220{}", d.to_hex())).unwrap(),
                d
            );
        }
    }

    #[test]
    fn other_cids_are_refused_with_the_reason() {
        let d = sha256(b"x");
        let err = |s: &str| parse_raw_cid(s).unwrap_err().to_string();
        assert!(err("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR").contains("CIDv0"));
        assert!(err(&format!("f01701220{}", d.to_hex())).contains("codec is not raw"));
        assert!(err(&format!("f01551320{}", d.to_hex())).contains("not a sha2-256"));
        assert!(err(&format!("f01551220{}00", d.to_hex())).contains("not a sha2-256"));
        assert!(err("bafkrei!").contains("bad base32"));
        assert!(err("zb2rh").contains("base32"));
        assert!(err("").contains("expected"));
        // A base32 string whose last character leaves non-zero bits is not canonical.
        let mut cid = raw_cid(&d);
        let last = cid.pop().unwrap();
        cid.push(if last == 'z' { 'y' } else { 'z' });
        assert_ne!(parse_raw_cid(&cid).ok(), Some(d));
    }

    #[test]
    fn kubo_names_hello_as_flownet_does() {
        // `ipfs block put --cid-codec=raw` of the 5 bytes "hello" on kubo 0.42.
        assert_eq!(
            raw_cid(&sha256(b"hello")),
            "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
        );
    }

    #[test]
    fn json_views_get_a_cid_beside_each_blob_of_one_block() {
        let d = sha256(b"x").to_hex();
        let mut v = serde_json::json!({
            "tasks": [{
                "weights_sha256": d, "size": 3,
                "input": { "sha256": d, "size": 1, "uri": "http://h/blobs/x" },
                "result": { "sha256": d, "size": MAX_BLOCK_BYTES + 1, "uri": "u", "mime": "m" },
            }],
            "other": { "sha256": d, "size": 1 },
        });
        add_cids(&mut v);
        let t = &v["tasks"][0];
        assert_eq!(t["input"]["cid"], raw_cid(&sha256(b"x")));
        assert!(t.get("cid").is_none() && t["result"].get("cid").is_none());
        assert!(v["other"].get("cid").is_none());
    }

    #[test]
    fn only_blobs_of_one_block_have_a_cid() {
        let d = sha256(b"x");
        assert!(cid_of(&d, MAX_BLOCK_BYTES).is_some());
        assert!(cid_of(&d, MAX_BLOCK_BYTES + 1).is_none());
    }
}
