// The page on Flow: transactions built and sent in the browser with FCL. The user's
// authorization signs with the browser's own P-256 key (or the user's Flow wallet,
// through FCL discovery); the payer's authorization asks the gateway, whose sponsor
// checks the transaction and signs its envelope only, so the user never holds FLOW.
// The gateway says which Cadence and arguments carry out each action (the mapping its
// FlowLedger uses), and waits for the seal to read the outcome from the events.

import * as fcl from "@onflow/fcl";
import { ApiError, type FlowConfig, call } from "./api";
import type { Action } from "./encoding";
import { unhex } from "./encoding";
import { type StoredKey, signRaw } from "./keys";

interface Built {
  template: string;
  cadence: string;
  arguments: unknown[];
  authorizers: ("user" | "sponsor")[];
  gas_limit: number;
}

interface SignedByPayer {
  address: string;
  key_index: number;
  signature: string;
  id: string;
}

export interface FlowReceipt {
  id: string;
  height: number;
  outcome: { task?: number; nft?: number; credited?: number; account?: string };
}

/** FCL's account shape, as much of it as an authorization function fills in. */
interface Account {
  [k: string]: unknown;
}

interface Signable {
  message: string;
  voucher: {
    cadence: string;
    refBlock: string;
    computeLimit: number;
    arguments: unknown[];
    proposalKey: { address: string; keyId: number; sequenceNum: number };
    payer: string;
    authorizers: string[];
    payloadSigs: { address: string; keyId: number; sig: string }[];
  };
}

type Authz = (account: Account) => Promise<Account>;

const sans = (a: string) => a.replace(/^0x/, "");
const withPrefix = (a: string) => `0x${sans(a)}`;

/** Points FCL at the gateway's proxy of the Access API and the discovery wallet. */
export function configure(cfg: FlowConfig): void {
  if (!cfg.access_node) throw new Error("the gateway knows no Flow Access API (start it with --flow-rest)");
  const c: Record<string, string | number> = {
    "accessNode.api": new URL(cfg.access_node, location.origin).href.replace(/\/$/, ""),
    "flow.network": cfg.network === "emulator" ? "local" : cfg.network,
    "app.detail.title": "FlowNet",
    "fcl.limit": cfg.gas_limit,
  };
  if (cfg.discovery_wallet) c["discovery.wallet"] = cfg.discovery_wallet;
  fcl.config(c);
}

/** The authorization of an account whose key 0 is the browser's key. */
export function keyAuthz(key: StoredKey, address: string): Authz {
  return async (account) => ({
    ...account,
    tempId: `${sans(address)}-0`,
    addr: sans(address),
    keyId: 0,
    signingFunction: async (signable: Signable) => ({
      addr: withPrefix(address),
      keyId: 0,
      signature: await signRaw(key, unhex(signable.message)),
    }),
  });
}

/** The payer's authorization: the gateway's sponsor signs the envelope after its
 * checks (FlowNet templates only, payload signatures valid, rate limit). */
export function payerAuthz(cfg: FlowConfig): Authz {
  const payer = cfg.payer;
  if (!payer) throw new Error("this gateway has no sponsor to pay for transactions");
  return async (account) => ({
    ...account,
    tempId: `${sans(payer)}-${cfg.payer_key_index}`,
    addr: sans(payer),
    keyId: cfg.payer_key_index,
    signingFunction: async (signable: Signable) => {
      const v = signable.voucher;
      const signed = await call<SignedByPayer>("/api/flow/sign", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          script: v.cadence,
          // Exactly the bytes FCL encodes (and the user signed): JSON.stringify of each.
          arguments: v.arguments.map((a) => JSON.stringify(a)),
          reference_block_id: v.refBlock,
          gas_limit: v.computeLimit,
          proposal_key: {
            address: withPrefix(v.proposalKey.address),
            key_index: v.proposalKey.keyId,
            sequence_number: v.proposalKey.sequenceNum,
          },
          payer: withPrefix(v.payer),
          authorizers: v.authorizers.map(withPrefix),
          payload_signatures: v.payloadSigs.map((s) => ({
            address: withPrefix(s.address),
            key_index: s.keyId,
            signature: s.sig,
          })),
        }),
      });
      if (sans(signed.address) !== sans(payer) || signed.key_index !== cfg.payer_key_index)
        throw new Error(`the sponsor signed as ${signed.address} key ${signed.key_index}, not as the payer it announced`);
      return { addr: withPrefix(signed.address), keyId: signed.key_index, signature: signed.signature };
    },
  });
}

/** JSON-Cadence passed to FCL as the gateway built it. */
const RAW = { label: "JSON-Cadence", asArgument: (v: unknown) => v, asInjection: (v: unknown) => v };

/** Carries out `action` on Flow: the gateway's Cadence and arguments, signed by `user`
 * (proposer and authorizer) and paid by the sponsor; waits for the seal. */
export async function sendAction(cfg: FlowConfig, user: Authz, action: Action): Promise<FlowReceipt> {
  const built = await call<Built>("/api/flow/transaction", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ action }),
  });
  const payer = payerAuthz(cfg);
  const authorizations = built.authorizers.map((a) => (a === "user" ? user : payer));
  let id: string;
  try {
    id = await fcl.mutate({
      cadence: built.cadence,
      args: () => built.arguments.map((a) => fcl.arg(a, RAW as never)),
      proposer: user as never,
      payer: payer as never,
      authorizations: authorizations as never,
      limit: built.gas_limit,
    });
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new Error(`sending the Flow transaction failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  return call<FlowReceipt>(`/api/flow/transactions/${id}`);
}

/** Logs in with a Flow wallet through FCL discovery; the wallet's address. */
export async function walletLogin(): Promise<string> {
  const user = await fcl.authenticate();
  if (!user?.addr) throw new Error("the wallet did not log in");
  return withPrefix(user.addr);
}

export async function walletLogout(): Promise<void> {
  await fcl.unauthenticate();
}

/** The logged-in wallet's address, if a wallet session is open. */
export async function walletAddress(): Promise<string | undefined> {
  const user = await fcl.currentUser.snapshot();
  return user?.loggedIn && user.addr ? withPrefix(user.addr) : undefined;
}

/** The wallet user's authorization (the wallet signs; the sponsor still pays). */
export const walletAuthz: Authz = fcl.authz as unknown as Authz;
