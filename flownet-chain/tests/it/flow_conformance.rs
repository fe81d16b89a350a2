//! The Rust Flow client against two independent SDKs: `@onflow/sdk` (npm) and
//! `flow-py-sdk` (PyPI), installed by `scripts/test-cadence.sh` under
//! `tests/conformance/`. For generated transactions (random scripts, every
//! argument type the project's templates use, one to three authorizers,
//! payer ≠ proposer, all four key pairings), both SDKs must encode the payload
//! and envelope byte for byte as Rust does and compute the same transaction
//! id; Rust's signatures must verify in Python and Python's in Rust; and
//! JSON-Cadence values must round-trip through both SDKs' codecs.

use std::{collections::BTreeMap, path::PathBuf, process::Command};

use flownet_chain::flow::{
    FlowKey, HashAlgorithm, ProposalKey, SignatureAlgorithm, Transaction, Value, keys,
};
use flownet_core::Address;
use serde_json::{Value as Json, json};

/// How many transactions each SDK encodes.
const TRANSACTIONS: usize = 24;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.next() as u8;
        }
        out
    }
    fn text(&mut self) -> String {
        const PIECES: [&str; 14] = [
            "a", "Z", " ", "0", "é", "✓", "\"", "\\", "\n", "\t", "{}", "日本", "🚀", "\u{7f}",
        ];
        let n = self.below(12);
        (0..n).map(|_| *self.pick(&PIECES)).collect()
    }
    fn address(&mut self) -> Address {
        Address(self.bytes())
    }
}

/// A typed argument, both as the SDK-neutral spec the partners build their
/// own values from and as the Rust value.
fn argument(rng: &mut Rng, depth: u32) -> (Json, Value) {
    let kinds = if depth == 0 {
        &[
            "String", "Address", "UInt8", "UInt32", "UInt64", "UFix64", "Bool", "Array", "Optional",
        ][..]
    } else {
        &["String", "Address", "UInt64", "UFix64", "Bool"][..]
    };
    match *rng.pick(kinds) {
        "String" => {
            let s = rng.text();
            (json!({"t": "String", "v": s}), Value::string(s))
        }
        "Address" => {
            let a = rng.address();
            (
                json!({"t": "Address", "v": a.to_string()}),
                Value::Address(a),
            )
        }
        "UInt8" => {
            let v = rng.next() as u8;
            (json!({"t": "UInt8", "v": v.to_string()}), Value::uint8(v))
        }
        "UInt32" => {
            let v = rng.next() as u32;
            (json!({"t": "UInt32", "v": v.to_string()}), Value::uint32(v))
        }
        "UInt64" => {
            let v = rng.next();
            (json!({"t": "UInt64", "v": v.to_string()}), Value::uint64(v))
        }
        "UFix64" => {
            // Mostly small amounts, sometimes the extremes.
            let units = match rng.below(4) {
                0 => 0,
                1 => u64::MAX,
                _ => rng.below(10_000_000_000_000),
            };
            let text = format!("{}.{:08}", units / 100_000_000, units % 100_000_000);
            (json!({"t": "UFix64", "v": text}), Value::UFix64(units))
        }
        "Bool" => {
            let b = rng.below(2) == 1;
            (json!({"t": "Bool", "v": b}), Value::Bool(b))
        }
        "Array" => {
            let elem = *rng.pick(&["String", "UFix64", "Address"]);
            let n = rng.below(4);
            let mut specs = Vec::new();
            let mut values = Vec::new();
            for _ in 0..n {
                let (s, v) = loop {
                    let (s, v) = argument(rng, 1);
                    if s["t"] == elem {
                        break (s, v);
                    }
                };
                specs.push(s);
                values.push(v);
            }
            (
                json!({"t": "Array", "of": {"t": elem}, "v": specs}),
                Value::Array(values),
            )
        }
        _ => {
            let elem = *rng.pick(&["Address", "UInt64"]);
            if rng.below(2) == 0 {
                (
                    json!({"t": "Optional", "of": {"t": elem}, "v": null}),
                    Value::optional(None),
                )
            } else {
                let (s, v) = loop {
                    let (s, v) = argument(rng, 1);
                    if s["t"] == elem {
                        break (s, v);
                    }
                };
                (
                    json!({"t": "Optional", "of": {"t": elem}, "v": s}),
                    Value::optional(Some(v)),
                )
            }
        }
    }
}

fn random_script(rng: &mut Rng) -> String {
    let body = rng.text();
    let n = rng.below(3);
    let mut script = String::from("import \"FlowNetMarketplace\"\n\ntransaction(");
    for i in 0..n {
        if i > 0 {
            script.push_str(", ");
        }
        script.push_str(&format!("a{i}: String"));
    }
    script.push_str(") {\n    prepare(signer: &Account) {\n        log(");
    script.push_str(&serde_json::to_string(&body).unwrap());
    script.push_str(")\n    }\n}\n");
    if rng.below(4) == 0 {
        // Long scripts exercise RLP's long-length prefixes.
        script.push_str(&"// padding padding padding padding\n".repeat(rng.below(40) as usize));
    }
    script
}

struct Signer {
    key: FlowKey,
    key_index: u32,
}

fn algo_name(key: &FlowKey) -> (&'static str, &'static str) {
    (
        match key.algorithm() {
            SignatureAlgorithm::EcdsaP256 => "ECDSA_P256",
            SignatureAlgorithm::EcdsaSecp256k1 => "ECDSA_secp256k1",
        },
        match key.hash_algorithm() {
            HashAlgorithm::Sha2_256 => "SHA2_256",
            HashAlgorithm::Sha3_256 => "SHA3_256",
        },
    )
}

fn generate_case(rng: &mut Rng, i: usize) -> (Json, Transaction, BTreeMap<Address, Signer>) {
    let pairings = [
        (SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256),
        (SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha2_256),
        (SignatureAlgorithm::EcdsaSecp256k1, HashAlgorithm::Sha3_256),
        (SignatureAlgorithm::EcdsaSecp256k1, HashAlgorithm::Sha2_256),
    ];
    let proposer = rng.address();
    let payer = loop {
        let a = rng.address();
        if a != proposer {
            break a;
        }
    };
    // One to three authorizers, sometimes including the proposer or the payer.
    let mut authorizers = Vec::new();
    for _ in 0..=rng.below(3) {
        let a = match rng.below(4) {
            0 => proposer,
            1 => payer,
            _ => rng.address(),
        };
        if !authorizers.contains(&a) {
            authorizers.push(a);
        }
    }
    let mut signers = BTreeMap::new();
    for (n, a) in [proposer, payer]
        .iter()
        .chain(authorizers.iter())
        .enumerate()
    {
        signers.entry(*a).or_insert_with(|| {
            let (alg, hash) = pairings[(i + n) % pairings.len()];
            Signer {
                key: FlowKey::generate(alg, hash),
                key_index: rng.below(5) as u32,
            }
        });
    }
    let args: Vec<(Json, Value)> = (0..rng.below(6)).map(|_| argument(rng, 0)).collect();
    let mut tx = Transaction::new(
        random_script(rng).into_bytes(),
        args.iter().map(|(_, v)| v.to_json_bytes()).collect(),
        rng.bytes(),
        rng.below(10_000),
        ProposalKey {
            address: proposer,
            key_index: signers[&proposer].key_index,
            sequence_number: rng.below(1 << 31),
        },
        payer,
        authorizers.clone(),
    );
    for a in tx.signer_list() {
        if a != payer && (a == proposer || authorizers.contains(&a)) {
            tx.sign_payload(a, signers[&a].key_index, &signers[&a].key)
                .unwrap();
        }
    }
    tx.sign_envelope(payer, signers[&payer].key_index, &signers[&payer].key)
        .unwrap();

    let sig_json = |s: &flownet_chain::flow::TxSignature| json!({"address": s.address.to_string(), "key_index": s.key_index, "signature": hex(&s.signature)});
    let keys: serde_json::Map<String, Json> = signers
        .iter()
        .map(|(a, s)| {
            let (alg, hash) = algo_name(&s.key);
            (
                a.to_string(),
                json!({
                    "key_index": s.key_index,
                    "private_key": hex(&s.key.to_bytes()),
                    "public_key": hex(&s.key.public_key()),
                    "signature_algorithm": alg,
                    "hash_algorithm": hash,
                }),
            )
        })
        .collect();
    let case = json!({
        "script": String::from_utf8(tx.script.clone()).unwrap(),
        "arguments": args.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
        "ref_block": hex(&tx.reference_block_id),
        "gas_limit": tx.gas_limit,
        "proposer": {
            "address": proposer.to_string(),
            "key_index": tx.proposal_key.key_index,
            "sequence_number": tx.proposal_key.sequence_number,
        },
        "payer": payer.to_string(),
        "authorizers": authorizers.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "keys": keys,
        "payload_signatures": tx.payload_signatures.iter().map(sig_json).collect::<Vec<_>>(),
        "envelope_signatures": tx.envelope_signatures.iter().map(sig_json).collect::<Vec<_>>(),
    });
    (case, tx, signers)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// Runs a partner and returns its JSON output. The partners are installed by
/// `scripts/test-cadence.sh`; a missing one fails the test with that advice.
fn run_partner(program: PathBuf, script: &str, input: &std::path::Path) -> Json {
    let dir = conformance_dir();
    let output = Command::new(&program)
        .arg(dir.join(script))
        .arg(input)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run scripts/test-cadence.sh to install the conformance SDKs",
                program.display()
            )
        });
    assert!(
        output.status.success(),
        "{script} failed (run scripts/test-cadence.sh to install the SDKs):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("partner output is JSON")
}

fn python() -> PathBuf {
    std::env::var_os("FLOW_CONFORMANCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| conformance_dir().join(".venv/bin/python"))
}

fn value_cases() -> Vec<(Json, Value)> {
    let mut rng = Rng(0x5eed_cade_0000_0001);
    let mut out: Vec<(Json, Value)> = (0..40).map(|_| argument(&mut rng, 0)).collect();
    // The edges: empty text, the largest amounts and integers.
    out.push((json!({"t": "String", "v": ""}), Value::string("")));
    out.push((
        json!({"t": "UFix64", "v": "184467440737.09551615"}),
        Value::UFix64(u64::MAX),
    ));
    out.push((
        json!({"t": "UInt64", "v": "18446744073709551615"}),
        Value::uint64(u64::MAX),
    ));
    out.push((
        json!({"t": "Array", "of": {"t": "String"}, "v": []}),
        Value::Array(vec![]),
    ));
    out
}

#[test]
fn two_independent_sdks_encode_sign_and_decode_as_rust_does() {
    let mut rng = Rng(0xf10e_cade_2026_0001);
    let mut cases = Vec::new();
    let mut txs = Vec::new();
    for i in 0..TRANSACTIONS {
        let (case, tx, signers) = generate_case(&mut rng, i);
        cases.push(case);
        txs.push((tx, signers));
    }
    let values = value_cases();
    let input = json!({
        "transactions": cases,
        "values": values.iter().map(|(spec, v)| json!({"spec": spec, "json": v.to_json()})).collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.json");
    std::fs::write(&path, serde_json::to_vec(&input).unwrap()).unwrap();

    let js = run_partner(PathBuf::from("node"), "js_partner.cjs", &path);
    let py = run_partner(python(), "py_partner.py", &path);
    let tag = hex(&keys::padded_tag(keys::TRANSACTION_DOMAIN_TAG));

    for (i, (tx, signers)) in txs.iter().enumerate() {
        let payload = hex(&tx.payload_message());
        let envelope = hex(&tx.envelope_message().unwrap());
        let args: Vec<String> = tx
            .arguments
            .iter()
            .map(|a| String::from_utf8(a.clone()).unwrap())
            .collect();

        // @onflow/sdk: arguments from @onflow/types, payload, envelope, id.
        let j = &js["transactions"][i];
        assert_eq!(j["arguments"], json!(args), "tx {i}: JS argument encoding");
        assert_eq!(
            j["payload"],
            json!(format!("{tag}{payload}")),
            "tx {i}: JS payload"
        );
        assert_eq!(
            j["envelope"],
            json!(format!("{tag}{envelope}")),
            "tx {i}: JS envelope"
        );
        assert_eq!(
            j["id"],
            json!(hex(&tx.id().unwrap())),
            "tx {i}: JS transaction id"
        );

        // flow-py-sdk: its own typed arguments, payload, envelope over Rust's
        // payload signatures, and its envelope over its own signatures.
        let p = &py["transactions"][i];
        assert_eq!(
            p["arguments"],
            json!(args),
            "tx {i}: Python argument encoding"
        );
        assert_eq!(p["payload"], json!(payload), "tx {i}: Python payload");
        assert_eq!(p["envelope"], json!(envelope), "tx {i}: Python envelope");
        let verified = p["rust_signatures_verified"].as_array().unwrap();
        assert_eq!(
            verified.len(),
            tx.payload_signatures.len() + tx.envelope_signatures.len()
        );
        assert!(
            verified.iter().all(|v| v == true),
            "tx {i}: Python rejected a Rust signature: {verified:?}"
        );

        // Python's signatures verify in Rust, and a tampered one does not.
        let tag_bytes = keys::padded_tag(keys::TRANSACTION_DOMAIN_TAG);
        let own_envelope = unhex(p["envelope_own"].as_str().unwrap());
        let mut checked = 0;
        for (list, message) in [
            (&p["payload_signatures"], tx.payload_message()),
            (&p["envelope_signatures"], own_envelope.clone()),
        ] {
            for s in list.as_array().unwrap() {
                let address: Address = s["address"].as_str().unwrap().parse().unwrap();
                let signer = &signers[&address];
                let sig = unhex(s["signature"].as_str().unwrap());
                let pk = signer.key.public_key();
                let (alg, hash) = (signer.key.algorithm(), signer.key.hash_algorithm());
                assert!(
                    keys::verify(alg, hash, &pk, &tag_bytes, &message, &sig),
                    "tx {i}: Rust rejected Python's signature by {address}"
                );
                let mut tampered = message.clone();
                tampered[0] ^= 1;
                assert!(!keys::verify(alg, hash, &pk, &tag_bytes, &tampered, &sig));
                checked += 1;
            }
        }
        assert_eq!(
            checked,
            tx.payload_signatures.len() + tx.envelope_signatures.len()
        );
    }

    // JSON-Cadence: each SDK's encoding of the typed value equals Rust's, and
    // decoding Rust's bytes then re-encoding gives them back.
    for (n, (spec, value)) in values.iter().enumerate() {
        let rust = value.to_json();
        for (sdk, out) in [("@onflow/sdk", &js), ("flow-py-sdk", &py)] {
            let v = &out["values"][n];
            assert_eq!(
                v["encoded"],
                json!(rust),
                "value {n} ({spec}): {sdk} encodes differently"
            );
            assert_eq!(
                v["reencoded"],
                json!(rust),
                "value {n} ({spec}): {sdk} does not round-trip"
            );
            // And Rust decodes the SDK's bytes back to the same value.
            let back = Value::from_json(v["encoded"].as_str().unwrap().as_bytes()).unwrap();
            assert_eq!(
                &back, value,
                "value {n}: Rust decodes {sdk}'s encoding differently"
            );
        }
    }
}
