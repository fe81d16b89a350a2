// Conformance partner: @onflow/sdk (npm). Reads the cases the Rust test wrote
// and prints what the JS SDK makes of them, for the Rust test to compare:
// payload and envelope encodings, transaction ids, argument encodings built
// from typed values with @onflow/types, and JSON-Cadence round trips.
"use strict";
const fs = require("fs");
const sdk = require("@onflow/sdk");
const t = require("@onflow/types");

// The @onflow/types type for a spec: {"t": "UInt64"}, {"t": "Array", "of": spec}, ...
function typeOf(spec) {
  switch (spec.t) {
    case "Array":
      return t.Array(typeOf(spec.of));
    case "Optional":
      return t.Optional(typeOf(spec.of));
    default:
      if (!t[spec.t]) throw new Error(`no @onflow/types type ${spec.t}`);
      return t[spec.t];
  }
}

// The plain JS value @onflow/types takes for a spec's value.
function plain(spec) {
  switch (spec.t) {
    case "Array":
      return spec.v.map(plain);
    case "Optional":
      return spec.v === null ? null : plain(spec.v);
    default:
      return spec.v;
  }
}

const encodeSpec = (spec) => typeOf(spec).asArgument(plain(spec));
const sans = (a) => a.replace(/^0x/, "");

async function main() {
  const input = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const transactions = input.transactions.map((c) => {
    const args = c.arguments.map(encodeSpec);
    const tx = {
      cadence: c.script,
      refBlock: c.ref_block,
      computeLimit: c.gas_limit,
      arguments: args,
      proposalKey: {
        address: sans(c.proposer.address),
        keyId: c.proposer.key_index,
        sequenceNum: c.proposer.sequence_number,
      },
      payer: sans(c.payer),
      authorizers: c.authorizers.map(sans),
      payloadSigs: c.payload_signatures.map((s) => ({ address: sans(s.address), keyId: s.key_index, sig: s.signature })),
      envelopeSigs: c.envelope_signatures.map((s) => ({ address: sans(s.address), keyId: s.key_index, sig: s.signature })),
    };
    return {
      arguments: args.map((a) => JSON.stringify(a)),
      payload: sdk.encodeTransactionPayload(tx),
      envelope: sdk.encodeTransactionEnvelope(tx),
      id: sdk.encodeTxIdFromVoucher(tx),
    };
  });
  const values = [];
  for (const v of input.values) {
    const decoded = await sdk.decode({ encodedData: JSON.parse(v.json) });
    values.push({
      encoded: JSON.stringify(encodeSpec(v.spec)),
      reencoded: JSON.stringify(typeOf(v.spec).asArgument(decoded)),
    });
  }
  process.stdout.write(JSON.stringify({ sdk: "@onflow/sdk", transactions, values }));
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
