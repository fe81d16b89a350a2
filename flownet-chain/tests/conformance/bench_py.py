"""Encode + sign throughput of flow-py-sdk (pure-Python ECDSA), for the
side-by-side benchmark (examples/flow_sign_bench.rs). Reads the case written
by the benchmark and prints {"tx_per_s": n}."""

import json
import sys
import time

from flow_py_sdk import cadence
from flow_py_sdk.cadence.decode import cadence_object_hook
from flow_py_sdk.signer import HashAlgo, InMemorySigner, SignAlgo
from flow_py_sdk.tx import ProposalKey, Tx


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        c = json.load(f)["case"]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    args = [json.loads(a, object_hook=cadence_object_hook) for a in c["arguments"]]
    proposer = cadence.Address.from_hex(c["proposer"])
    payer = cadence.Address.from_hex(c["payer"])
    signer = lambda k: InMemorySigner(hash_algo=HashAlgo.SHA3_256, sign_algo=SignAlgo.ECDSA_P256, private_key_hex=k["private_key"])
    proposer_signer, payer_signer = signer(c["proposer_key"]), signer(c["payer_key"])
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        tx = (
            Tx(
                code=c["script"],
                reference_block_id=bytes.fromhex(c["ref_block"]),
                payer=payer,
                proposal_key=ProposalKey(key_address=proposer, key_id=0, key_sequence_number=n),
            )
            .with_gas_limit(9999)
            .add_arguments(*args)
            .add_authorizers(proposer)
            .with_payload_signature(proposer, 0, proposer_signer)
            .with_envelope_signature(payer, 0, payer_signer)
        )
        tx._submit_signature()
        n += 1
    elapsed = time.perf_counter() - start
    sys.stdout.write(json.dumps({"sdk": "flow-py-sdk", "tx_per_s": n / elapsed, "n": n}))


if __name__ == "__main__":
    main()
