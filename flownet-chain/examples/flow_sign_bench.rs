//! Side-by-side benchmark: Flow transaction encode + sign per second, the
//! Rust client against @onflow/sdk (Node's OpenSSL) and flow-py-sdk
//! (pure-Python ECDSA), on the same FlowNet `submit` transaction (proposer
//! signs the payload, a sponsor the envelope; P-256 / SHA3-256), one thread
//! each. Run after `scripts/test-cadence.sh` installed the SDKs:
//!
//! ```text
//! cargo run --release -p flownet-chain --features flow --example flow_sign_bench
//! ```

use std::{path::PathBuf, process::Command, time::Instant};

use flownet_chain::flow::{
    FlowKey, HashAlgorithm, Network, ProposalKey, SignatureAlgorithm, Template, Transaction, Value,
};
use flownet_core::Address;
use serde_json::json;

const SECONDS: f64 = 2.0;

fn main() {
    let network = Network::named("emulator").expect("the emulator network");
    let script = network
        .template(Template::Submit)
        .expect("the submit template");
    let proposer_key = FlowKey::generate(SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256);
    let payer_key = FlowKey::generate(SignatureAlgorithm::EcdsaP256, HashAlgorithm::Sha3_256);
    let proposer = Address([0x01, 0xcf, 0x0e, 0x2f, 0x2f, 0x71, 0x54, 0x50]);
    let payer = Address([0xf8, 0xd6, 0xe0, 0x58, 0x6b, 0x0a, 0x20, 0xc7]);
    let args: Vec<Vec<u8>> = [
        Value::Address(Address([0x17, 0x9b, 0x6b, 0x1c, 0xb6, 0x75, 0x5e, 0x31])),
        Value::string("terrain-v1"),
        Value::string("a mountain lake at dawn"),
        Value::string("{\"seed\":42,\"difficulty\":60}"),
        Value::UFix64(250_000_000),
    ]
    .iter()
    .map(Value::to_json_bytes)
    .collect();
    let reference = [7u8; 32];

    let once = |seq: u64, proposer_key: &FlowKey, payer_key: &FlowKey| {
        let mut tx = Transaction::new(
            script.as_bytes(),
            args.clone(),
            reference,
            9999,
            ProposalKey {
                address: proposer,
                key_index: 0,
                sequence_number: seq,
            },
            payer,
            vec![proposer],
        );
        tx.sign_payload(proposer, 0, proposer_key).unwrap();
        tx.sign_envelope(payer, 0, payer_key).unwrap();
        tx
    };
    let rate = |proposer_key: &FlowKey, payer_key: &FlowKey| {
        let mut n = 0u64;
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < SECONDS {
            std::hint::black_box(once(n, proposer_key, payer_key));
            n += 1;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let rust = rate(&proposer_key, &payer_key);
    let k1 = |_| FlowKey::generate(SignatureAlgorithm::EcdsaSecp256k1, HashAlgorithm::Sha3_256);
    let rust_k1 = rate(&k1(()), &k1(()));

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let key_json = |k: &FlowKey| json!({"private_key": hex::encode(k.to_bytes()), "public_key": hex::encode(k.public_key())});
    let case = json!({"case": {
        "script": script,
        "arguments": args.iter().map(|a| String::from_utf8(a.clone()).unwrap()).collect::<Vec<_>>(),
        "ref_block": hex::encode(reference),
        "proposer": proposer.to_string(),
        "payer": payer.to_string(),
        "proposer_key": key_json(&proposer_key),
        "payer_key": key_json(&payer_key),
    }});
    let file = std::env::temp_dir().join(format!("flownet-sign-bench-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec(&case).unwrap()).unwrap();
    let partner = |program: PathBuf, script: &str| -> Option<f64> {
        let out = Command::new(&program)
            .arg(dir.join(script))
            .arg(&file)
            .arg(SECONDS.to_string())
            .current_dir(&dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("{script}: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["tx_per_s"].as_f64()
    };
    let js = partner(PathBuf::from("node"), "bench_js.cjs");
    let py = partner(dir.join(".venv/bin/python"), "bench_py.py");
    let _ = std::fs::remove_file(&file);

    println!(
        "Flow transaction encode + sign (submit, payload + envelope signature, P-256/SHA3-256), 1 thread:"
    );
    println!("  Rust (flownet-chain)      {rust:>10.0} tx/s");
    println!("  (Rust with secp256k1 keys  {rust_k1:>10.0} tx/s)");
    for (name, v) in [("@onflow/sdk + OpenSSL", js), ("flow-py-sdk", py)] {
        match v {
            Some(v) => println!("  {name:<25} {v:>10.0} tx/s   Rust is {:.1}x", rust / v),
            None => println!("  {name:<25}     (not installed: run scripts/test-cadence.sh)"),
        }
    }
}
