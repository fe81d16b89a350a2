// The proof of work a public sponsor asks before it creates an account (flownet-chain's
// flow::pow): find a nonce such that SHA-256(challenge ‖ public key ‖ nonce as 8 bytes
// big endian) starts with `difficulty` zero bits — about 2^difficulty hashes, a second
// or so at the default 20. The gateway only relays the proof: the work is the page's.

import { sha256 } from "@noble/hashes/sha2.js";

import { unhex } from "./encoding.js";

/** The sponsor's challenge (`POST /api/flow/challenge`). */
export interface Challenge {
  challenge: string;
  difficulty: number;
  expires: number;
}

/** The number of leading zero bits of `hash`. */
export function leadingZeroBits(hash: Uint8Array): number {
  let n = 0;
  for (const b of hash) {
    if (b === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(b) - 24;
  }
  return n;
}

/** SHA-256(challenge ‖ key ‖ nonce), the nonce as 8 bytes big endian (below 2^53). */
export function workHash(challenge: Uint8Array, key: Uint8Array, nonce: number): Uint8Array {
  const buf = new Uint8Array(challenge.length + key.length + 8);
  buf.set(challenge, 0);
  buf.set(key, challenge.length);
  writeNonce(buf, challenge.length + key.length, nonce);
  return sha256(buf);
}

function writeNonce(buf: Uint8Array, at: number, nonce: number): void {
  const view = new DataView(buf.buffer, buf.byteOffset + at, 8);
  view.setUint32(0, Math.floor(nonce / 2 ** 32));
  view.setUint32(4, nonce >>> 0);
}

/** The first nonce whose work hash has `difficulty` leading zero bits; yields to the
 * page every 4096 hashes so it stays responsive. */
export async function solve(challenge: Uint8Array, key: Uint8Array, difficulty: number): Promise<number> {
  if (difficulty > 40) throw new Error(`the sponsor asks for ${difficulty} bits of work, more than 40`);
  const buf = new Uint8Array(challenge.length + key.length + 8);
  buf.set(challenge, 0);
  buf.set(key, challenge.length);
  const at = challenge.length + key.length;
  for (let nonce = 0; ; nonce++) {
    writeNonce(buf, at, nonce);
    if (leadingZeroBits(sha256(buf)) >= difficulty) return nonce;
    if ((nonce & 4095) === 4095) await new Promise((r) => setTimeout(r, 0));
  }
}

/** The `X-FlowNet-Pow` header's value for `challenge` solved for the public key
 * `publicKeyHex` (64 bytes, hex). */
export async function proofHeader(challenge: Challenge, publicKeyHex: string): Promise<string> {
  const nonce = await solve(unhex(challenge.challenge), unhex(publicKeyHex, 64), challenge.difficulty);
  return `${challenge.challenge}.${nonce}`;
}
