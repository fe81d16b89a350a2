// The envelope's canonical bytes, exactly as flownet-core encodes them
// (flownet-core/src/action.rs): every integer big-endian, every string and byte
// string prefixed by its u32 length, addresses as their 8 raw bytes, and the action
// as a one-byte tag followed by its fields. test/vectors.json pins the two together.

import { sha3_256 } from "@noble/hashes/sha3.js";

/** Bytes backed by a plain ArrayBuffer, as WebCrypto takes them. */
export type Bytes = Uint8Array<ArrayBuffer>;

export const ENVELOPE_TAG = "FLOWNET-V1-ENVELOPE";
export const ADDRESS_TAG = "FLOWNET-V1-ADDRESS";

/** Flow's numbers for hash algorithms. */
const HASH_CODES = { SHA2_256: 1, SHA3_256: 3 } as const;
export type HashAlgo = keyof typeof HASH_CODES;

export interface OutputRef {
  sha256: string;
  uri: string;
  mime: string;
  size: number;
  /** Its IPFS CID (a raw block of that SHA-256), as the gateway adds it to views; not signed. */
  cid?: string;
}

/** What an offer's price pays for: one task, or 1,000 output tokens. */
export type PriceUnit = "task" | "thousand_tokens";
const UNIT_CODES: Record<PriceUnit, number> = { task: 0, thousand_tokens: 1 };

export interface OfferedModel {
  model_id: string;
  weights_sha256: string;
  price: number;
  unit?: PriceUnit;
}

/** A task's input blob, named by hash and fetched by the node from `uri`. */
export interface InputRef {
  sha256: string;
  size: number;
  uri: string;
}

/** An action in its JSON form (serde's `type`-tagged enum). Amounts are units. */
export type Action =
  | { type: "create_account"; public_key: string; hash_algo?: HashAlgo }
  | { type: "faucet" }
  | { type: "transfer"; to: string; amount: number }
  | { type: "register_node"; name: string; endpoint: string; models: OfferedModel[] }
  | { type: "set_node_active"; active: boolean }
  | {
      type: "submit";
      node: string;
      model_id: string;
      prompt: string;
      params: string;
      max_price: number;
      input?: InputRef;
      max_units?: number;
    }
  | { type: "cancel"; task: number }
  | { type: "claim"; task: number }
  | { type: "fulfil"; task: number; result: OutputRef; units?: number }
  | { type: "expire"; task: number }
  | { type: "rate"; task: number; stars: number }
  | { type: "sweep"; task: number };

export interface Envelope {
  ledger: string;
  signer: string;
  sequence: number;
  action: Action;
}

export interface SignedEnvelope extends Envelope {
  signature: string;
}

export function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

export function unhex(s: string, expectedLength?: number): Bytes {
  const h = s.startsWith("0x") ? s.slice(2) : s;
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) {
    throw new Error(`not hex: ${JSON.stringify(s)}`);
  }
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  if (expectedLength !== undefined && out.length !== expectedLength) {
    throw new Error(`expected ${expectedLength} bytes, got ${out.length}`);
  }
  return out;
}

export function concat(...parts: Uint8Array[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A domain tag right-padded with zeros to 32 bytes (Flow's scheme). */
export function paddedTag(tag: string): Bytes {
  const out = new Uint8Array(32);
  out.set(new TextEncoder().encode(tag));
  return out;
}

/** The address the ledger gives a key: the first 8 bytes of SHA3-256(pad32(tag) ‖ key). */
export function deriveAddress(publicKey: Uint8Array): string {
  const digest = sha3_256(concat(paddedTag(ADDRESS_TAG), publicKey));
  return "0x" + hex(digest.slice(0, 8));
}

class Encoder {
  private parts: number[] = [];

  u8(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new Error(`not a u8: ${v}`);
    this.parts.push(v);
    return this;
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new Error(`not a u32: ${v}`);
    this.parts.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    return this;
  }

  u64(v: number | bigint): this {
    const n = BigInt(v);
    if (n < 0n || n > 0xffff_ffff_ffff_ffffn) throw new Error(`not a u64: ${v}`);
    for (let shift = 56n; shift >= 0n; shift -= 8n) this.parts.push(Number((n >> shift) & 0xffn));
    return this;
  }

  bytes(b: Uint8Array): this {
    this.u32(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }

  str(s: string): this {
    return this.bytes(new TextEncoder().encode(s));
  }

  address(a: string): this {
    for (const x of unhex(a, 8)) this.parts.push(x);
    return this;
  }

  done(): Bytes {
    return Uint8Array.from(this.parts);
  }
}

function encodeAction(e: Encoder, a: Action): void {
  switch (a.type) {
    case "create_account": {
      e.u8(1).bytes(unhex(a.public_key, 64));
      const algo = a.hash_algo ?? "SHA3_256";
      // SHA3-256, the default, adds nothing; others append Flow's code.
      if (algo !== "SHA3_256") e.u8(HASH_CODES[algo]);
      return;
    }
    case "faucet":
      e.u8(2);
      return;
    case "transfer":
      e.u8(3).address(a.to).u64(a.amount);
      return;
    case "register_node":
      e.u8(4).str(a.name).str(a.endpoint).u32(a.models.length);
      for (const m of a.models) e.str(m.model_id).bytes(unhex(m.weights_sha256, 32)).u64(m.price);
      // Per-task offers add nothing; otherwise each offer's unit code follows.
      if (a.models.some((m) => (m.unit ?? "task") !== "task")) {
        for (const m of a.models) e.u8(UNIT_CODES[m.unit ?? "task"]);
      }
      return;
    case "set_node_active":
      e.u8(5).u8(a.active ? 1 : 0);
      return;
    case "submit":
      e.u8(6).address(a.node).str(a.model_id).str(a.prompt).str(a.params).u64(a.max_price);
      // A submission with neither an input nor max_units adds nothing.
      if (a.input !== undefined || (a.max_units ?? 0) !== 0) {
        e.u64(a.max_units ?? 0);
        if (a.input === undefined) e.u8(0);
        else e.u8(1).bytes(unhex(a.input.sha256, 32)).u64(a.input.size).str(a.input.uri);
      }
      return;
    case "cancel":
      e.u8(7).u64(a.task);
      return;
    case "claim":
      e.u8(8).u64(a.task);
      return;
    case "fulfil":
      e.u8(9)
        .u64(a.task)
        .bytes(unhex(a.result.sha256, 32))
        .str(a.result.uri)
        .str(a.result.mime)
        .u64(a.result.size);
      if (a.units !== undefined) e.u64(a.units);
      return;
    case "expire":
      e.u8(10).u64(a.task);
      return;
    case "rate":
      e.u8(11).u64(a.task).u8(a.stars);
      return;
    case "sweep":
      e.u8(12).u64(a.task);
      return;
  }
}

/** The canonical bytes of an envelope. */
export function canonicalBytes(env: Envelope): Bytes {
  const e = new Encoder().bytes(unhex(env.ledger, 32)).address(env.signer).u64(env.sequence);
  encodeAction(e, env.action);
  return e.done();
}

/** What a SHA2-256 key signs: the padded envelope tag, then the canonical bytes. */
export function signingMessage(env: Envelope): Bytes {
  return concat(paddedTag(ENVELOPE_TAG), canonicalBytes(env));
}

/** The order of P-256's group. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

/**
 * Normalises an r‖s signature to low s, as flownet-core's signer does. WebCrypto
 * gives either twin; the ledger accepts both, but one form per signature keeps
 * envelope identities stable.
 */
export function lowS(sig: Bytes): Bytes {
  if (sig.length !== 64) throw new Error(`a P-256 signature is 64 bytes, got ${sig.length}`);
  const s = BigInt("0x" + hex(sig.slice(32)));
  if (s <= P256_N / 2n) return sig;
  const t = (P256_N - s).toString(16).padStart(64, "0");
  return concat(sig.slice(0, 32), unhex(t));
}

const UNITS = 100_000_000n;

/** Units of FLOWNET (10⁻⁸) as a decimal, e.g. 50000000 → "0.5". */
export function formatAmount(units: number | bigint): string {
  const n = BigInt(units);
  const whole = n / UNITS;
  const frac = n % UNITS;
  if (frac === 0n) return whole.toString();
  return `${whole}.${frac.toString().padStart(8, "0").replace(/0+$/, "")}`;
}
