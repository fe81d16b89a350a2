// The browser's key: ECDSA P-256 made by WebCrypto, kept in IndexedDB as a
// non-extractable CryptoKey (scripts on the page can ask it to sign, but nothing can
// read it out). Its account hashes with SHA2-256, the hash WebCrypto's ECDSA uses.
//
// Because the stored key cannot be read, the key file for moving to another browser
// can only be saved while the key is still in memory: right after it is made or
// imported. The page says so.

import {
  type Envelope,
  type SignedEnvelope,
  deriveAddress,
  hex,
  lowS,
  signingMessage,
  unhex,
} from "./encoding";

export interface StoredKey {
  privateKey: CryptoKey;
  /** X‖Y, 64 bytes, hex (Flow's encoding). */
  publicKey: string;
  address: string;
  created: number;
}

/** The key file: the same fields as the CLI's key files. */
export interface KeyFile {
  address: string;
  public_key: string;
  private_key: string;
  signature_algorithm: "ECDSA_P256";
  hash_algorithm: "SHA2_256";
  /** The key's account on each Flow network (Flow assigns addresses), as the CLI's. */
  flow_addresses?: Record<string, string>;
}

const ALGORITHM: EcKeyImportParams = { name: "ECDSA", namedCurve: "P-256" };
const DB = "flownet";
const STORE = "keys";
const SLOT = "default";

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function db(): Promise<IDBDatabase> {
  const open = indexedDB.open(DB, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  return request(open);
}

async function withStore<T>(
  mode: IDBTransactionMode,
  f: (s: IDBObjectStore) => IDBRequest<T>,
): Promise<T> {
  const d = await db();
  try {
    return await request(f(d.transaction(STORE, mode).objectStore(STORE)));
  } finally {
    d.close();
  }
}

export async function loadKey(): Promise<StoredKey | undefined> {
  return (await withStore("readonly", (s) => s.get(SLOT))) as StoredKey | undefined;
}

async function saveKey(k: StoredKey): Promise<void> {
  await withStore("readwrite", (s) => s.put(k, SLOT));
}

export async function forgetKey(): Promise<void> {
  await withStore("readwrite", (s) => s.delete(SLOT));
}

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function unb64url(s: string): Uint8Array {
  const b = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

/** Stores `jwk` as a non-extractable signing key and returns its key file. */
async function keep(jwk: JsonWebKey): Promise<{ stored: StoredKey; file: KeyFile }> {
  if (!jwk.x || !jwk.y || !jwk.d) throw new Error("the key is not a P-256 private key");
  const publicKey = hex(new Uint8Array([...unb64url(jwk.x), ...unb64url(jwk.y)]));
  const privateKey = await crypto.subtle.importKey(
    "jwk",
    { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, d: jwk.d },
    ALGORITHM,
    false,
    ["sign"],
  );
  const stored: StoredKey = {
    privateKey,
    publicKey,
    address: deriveAddress(unhex(publicKey)),
    created: Date.now(),
  };
  await saveKey(stored);
  const file: KeyFile = {
    address: stored.address,
    public_key: publicKey,
    private_key: hex(unb64url(jwk.d)),
    signature_algorithm: "ECDSA_P256",
    hash_algorithm: "SHA2_256",
  };
  return { stored, file };
}

/** Checks that the private scalar belongs to the public point, by signing once. */
async function checkPair(jwk: JsonWebKey): Promise<void> {
  const probe = new TextEncoder().encode("flownet key check");
  try {
    const priv = await crypto.subtle.importKey("jwk", jwk, ALGORITHM, false, ["sign"]);
    const pub = await crypto.subtle.importKey(
      "jwk",
      { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y },
      ALGORITHM,
      false,
      ["verify"],
    );
    const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, priv, probe);
    if (await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, pub, sig, probe)) return;
  } catch {
    // Fall through to the one message below.
  }
  throw new Error("the key file's private key does not match its public key");
}

/** Makes a new key. The key file is returned once, for saving; only the
 * non-extractable key is stored. */
export async function makeKey(): Promise<{ stored: StoredKey; file: KeyFile }> {
  const pair = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  return keep(jwk);
}

/** Reads a key file (this page's, or a CLI key file with a SHA2_256 key). */
export async function importKeyFile(text: string): Promise<{ stored: StoredKey; file: KeyFile }> {
  let f: Partial<KeyFile>;
  try {
    f = JSON.parse(text) as Partial<KeyFile>;
  } catch {
    throw new Error("this file is not a FlowNet key file (not JSON)");
  }
  if (typeof f.private_key !== "string" || typeof f.public_key !== "string") {
    throw new Error("this file is not a FlowNet key file (no private_key and public_key)");
  }
  if (f.hash_algorithm !== undefined && f.hash_algorithm !== "SHA2_256") {
    throw new Error(
      `this key signs with ${f.hash_algorithm}; the browser can only sign with SHA2_256 (WebCrypto)`,
    );
  }
  const pub = unhex(f.public_key, 64);
  const jwk: JsonWebKey = {
    kty: "EC",
    crv: "P-256",
    x: b64url(pub.slice(0, 32)),
    y: b64url(pub.slice(32)),
    d: b64url(unhex(f.private_key, 32)),
  };
  await checkPair(jwk);
  const kept = await keep(jwk);
  if (f.address && f.address !== kept.stored.address) {
    throw new Error(`the file says address ${f.address}, but its key's address is ${kept.stored.address}`);
  }
  if (f.flow_addresses && typeof f.flow_addresses === "object") {
    kept.file.flow_addresses = {};
    for (const [network, address] of Object.entries(f.flow_addresses)) {
      if (typeof address === "string" && /^0x[0-9a-f]{16}$/.test(address)) {
        kept.file.flow_addresses[network] = address;
        rememberFlowAddress(network, kept.stored.publicKey, address);
      }
    }
  }
  return kept;
}

/** Signs an envelope: ECDSA P-256 with SHA-256 over the padded tag and the canonical
 * bytes, r‖s normalised to low s. */
export async function sign(key: StoredKey, env: Envelope): Promise<SignedEnvelope> {
  const sig = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    key.privateKey,
    signingMessage(env),
  );
  return { ...env, signature: hex(lowS(new Uint8Array(sig))) };
}

/** Signs `message` as Flow signs a transaction with a P-256 / SHA2-256 account key:
 * ECDSA over SHA-256(message), where FCL's `message` already starts with the
 * transaction domain tag. Returns `r ‖ s`, hex, low s. */
export async function signRaw(key: StoredKey, message: Uint8Array): Promise<string> {
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey, message as BufferSource);
  return hex(lowS(new Uint8Array(sig)));
}

// A Flow account's address is assigned by the chain, not derived from the key: the
// page remembers it per network and key (and the key file carries it).
const flowSlot = (network: string, publicKey: string) => `flownet.flow-address.${network}.${publicKey}`;

export function flowAddress(network: string, publicKey: string): string | undefined {
  return localStorage.getItem(flowSlot(network, publicKey)) ?? undefined;
}

export function rememberFlowAddress(network: string, publicKey: string, address: string): void {
  localStorage.setItem(flowSlot(network, publicKey), address);
}
