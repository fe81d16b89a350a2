"""Conformance partner: flow-py-sdk (PyPI). Reads the cases the Rust test wrote
and prints what the Python SDK makes of them, for the Rust test to compare:
payload and envelope encodings of transactions it builds from typed values,
its own signatures (for Rust to verify), whether Rust's signatures verify, and
JSON-Cadence round trips."""

import json
import sys

from flow_py_sdk import cadence
from flow_py_sdk.cadence.decode import cadence_object_hook
from flow_py_sdk.signer import HashAlgo, InMemorySigner, InMemoryVerifier, SignAlgo
from flow_py_sdk.signer.signer import TransactionDomainTag
from flow_py_sdk.tx import ProposalKey, Tx, TxSignature

SIMPLE = {
    "String": lambda v: cadence.String(v),
    "Bool": lambda v: cadence.Bool(v),
    "Address": lambda v: cadence.Address.from_hex(v),
    "UInt8": lambda v: cadence.UInt8(int(v)),
    "UInt32": lambda v: cadence.UInt32(int(v)),
    "UInt64": lambda v: cadence.UInt64(int(v)),
    "Int": lambda v: cadence.Int(int(v)),
}


def ufix64(text):
    whole, _, frac = text.partition(".")
    return cadence.UFix64(int(whole) * 100_000_000 + int((frac + "00000000")[:8]))


def value_of(spec):
    kind = spec["t"]
    if kind == "Array":
        return cadence.Array([value_of(v) for v in spec["v"]])
    if kind == "Optional":
        return cadence.Optional(None if spec["v"] is None else value_of(spec["v"]))
    if kind == "UFix64":
        return ufix64(spec["v"])
    return SIMPLE[kind](spec["v"])


def address(hex_text):
    return cadence.Address.from_hex(hex_text)


def signer(key):
    return InMemorySigner(
        hash_algo=HashAlgo.from_string(key["hash_algorithm"]),
        sign_algo=SignAlgo.from_string(key["signature_algorithm"]),
        private_key_hex=key["private_key"],
    )


def verifier(key):
    return InMemoryVerifier(
        hash_algo=HashAlgo.from_string(key["hash_algorithm"]),
        sign_algo=SignAlgo.from_string(key["signature_algorithm"]),
        public_key_hex=key["public_key"],
    )


def build(case):
    tx = (
        Tx(
            code=case["script"],
            reference_block_id=bytes.fromhex(case["ref_block"]),
            payer=address(case["payer"]),
            proposal_key=ProposalKey(
                key_address=address(case["proposer"]["address"]),
                key_id=case["proposer"]["key_index"],
                key_sequence_number=case["proposer"]["sequence_number"],
            ),
        )
        .with_gas_limit(case["gas_limit"])
        .add_arguments(*[value_of(s) for s in case["arguments"]])
        .add_authorizers(*[address(a) for a in case["authorizers"]])
    )
    return tx


def run_transaction(case):
    tx = build(case)
    keys = case["keys"]
    # The Rust encoder sorts payload signatures by signer index then key
    # index; flow-py-sdk keeps them in the order they were added, so add them
    # in the canonical order.
    signers = tx._signer_list()
    payload_signers = []
    for a in [case["proposer"]["address"], *case["authorizers"]]:
        if a != case["payer"] and a not in payload_signers:
            payload_signers.append(a)
    payload_signers.sort(key=lambda a: (signers.index(address(a)), keys[a]["key_index"]))
    for a in payload_signers:
        tx.with_payload_signature(address(a), keys[a]["key_index"], signer(keys[a]))
    tx.with_envelope_signature(address(case["payer"]), keys[case["payer"]]["key_index"], signer(keys[case["payer"]]))

    payload = tx.payload_message()
    # The envelope over Rust's payload signatures, to compare bytes with Rust.
    rust_sigs = case["payload_signatures"]
    tx_rust = build(case)
    for s in rust_sigs:
        tx_rust.payload_signatures.append(_sig(tx_rust, s))
    envelope_over_rust = tx_rust.envelope_message()

    # Rust's signatures must verify under the Python verifier.
    rust_verified = []
    for s in rust_sigs:
        rust_verified.append(verifier(keys[s["address"]]).verify(bytes.fromhex(s["signature"]), payload, TransactionDomainTag))
    for s in case["envelope_signatures"]:
        rust_verified.append(
            verifier(keys[s["address"]]).verify(bytes.fromhex(s["signature"]), envelope_over_rust, TransactionDomainTag)
        )

    # Python's own signatures, for Rust to verify.
    tx._submit_signature()
    own_payload = [
        {"address": s.address.hex_with_prefix(), "key_index": s.key_id, "signature": s.signature.hex()}
        for s in tx.payload_signatures
    ]
    own_envelope = [
        {"address": s.address.hex_with_prefix(), "key_index": s.key_id, "signature": s.signature.hex()}
        for s in tx.envelope_signatures
    ]
    return {
        "arguments": [a.decode("utf-8") for a in cadence.encode_arguments(tx.arguments)],
        "payload": payload.hex(),
        "envelope": envelope_over_rust.hex(),
        "envelope_own": tx.envelope_message().hex(),
        "rust_signatures_verified": rust_verified,
        "payload_signatures": own_payload,
        "envelope_signatures": own_envelope,
    }


def _sig(tx, s):
    addr = address(s["address"])
    return TxSignature(addr, s["key_index"], tx._signer_list().index(addr), bytes.fromhex(s["signature"]))


def run_value(case):
    decoded = json.loads(case["json"], object_hook=cadence_object_hook)
    return {
        "encoded": cadence.encode_arguments([value_of(case["spec"])])[0].decode("utf-8"),
        "reencoded": cadence.encode_arguments([decoded])[0].decode("utf-8"),
    }


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    out = {
        "sdk": "flow-py-sdk",
        "transactions": [run_transaction(c) for c in data["transactions"]],
        "values": [run_value(v) for v in data["values"]],
    }
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
