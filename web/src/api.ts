// The gateway's JSON API, typed as the page uses it. Every error answer has OpenAI's
// shape, {"error": {"message", "type", "code", "param"}}.

import type { Action, InputRef, OutputRef, SignedEnvelope } from "./encoding";
import type { Challenge } from "./pow";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

export async function call<T>(path: string, init?: RequestInit): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError("the gateway cannot be reached", 0, "network");
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const e = (body as { error?: { message?: string; code?: string } } | undefined)?.error;
    throw new ApiError(e?.message ?? `${res.status} ${res.statusText}`, res.status, e?.code ?? "");
  }
  return body as T;
}

export interface Info {
  ledger: string;
  network: string;
  now: number;
  faucet_amount: string;
  config: { claim_window_s: number; fulfil_window_s: number; faucet_amount: number };
  limits: { max_prompt_bytes: number; max_body_bytes: number; max_image_bytes?: number };
}

export interface Account {
  address: string;
  sequence: number;
  balance: string;
  balance_units: number;
  faucet_used: boolean;
  hash_algo: string;
}

export interface NodeOffer {
  model_id: string;
  weights_sha256: string;
  price: string;
  price_units: number;
  /** What the price pays for: one task, or 1,000 output tokens. */
  unit?: "task" | "thousand_tokens";
  kind: string | null;
  output_mime: string | null;
}

export interface NodeView {
  owner: string;
  name: string;
  active: boolean;
  score: number;
  ratings: number;
  reliability: number | null;
  /** The lower bound of the reliability (0 with no record) and the score times it,
   * which the ledger's listing ranks by. */
  reliability_bound?: number;
  rank_key?: number;
  fulfilled?: number;
  missed?: number;
  declined?: number;
  /** What the payers' rated tasks cost in all, in FLOWNET. */
  rated_paid?: string;
  community_score: number | null;
  community_ratings: number;
  models: NodeOffer[];
}

export interface ModelView {
  id: string;
  kind: string;
  name: string;
  prompt_mapping: string;
  size: string | null;
  /** The MIME type the model's manifest declares for its outputs. */
  output_mime?: string | null;
}

export interface Task {
  id: number;
  requester: string;
  node: string;
  model_id: string;
  weights_sha256: string;
  prompt: string;
  params: string;
  price: number;
  /** Metered tasks: the price per 1,000 tokens, the most tokens escrowed, the tokens
   * the node stated it wrote, and what came back. */
  unit_price?: number | null;
  max_units?: number;
  units?: number | null;
  refunded?: number;
  status: "open" | "claimed" | "fulfilled" | "cancelled" | "expired" | "declined";
  claimed_at?: number | null;
  /** Why the node declined the task, when it did. */
  declined_reason?: string | null;
  submitted_at: number;
  claim_deadline: number;
  fulfil_deadline: number | null;
  result: OutputRef | null;
  nft: number | null;
  bounty_pool: number;
  bounty_share: number;
  bounty_paid: number;
}

export interface Nft {
  id: number;
  task: number;
  prompt: string;
  model_id: string;
  weights_sha256: string;
  output: OutputRef;
  node: string;
  minted_at: number;
}

export interface OutputView {
  task: Task;
  ratings: number;
  rated_by_viewer: boolean;
  bounty_next: string;
}

export interface Receipt {
  hash: string;
  action: string;
  outcome: { task?: number; nft?: number; credited?: number; account?: string };
}

export const api = {
  info: () => call<Info>("/api/info"),
  models: () => call<{ models: ModelView[] }>("/api/models").then((r) => r.models),
  nodes: () => call<{ nodes: NodeView[] }>("/api/nodes").then((r) => r.nodes),
  account: async (address: string): Promise<Account | undefined> => {
    try {
      return await call<Account>(`/api/accounts/${address}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return undefined;
      throw e;
    }
  },
  task: (id: number) => call<{ task: Task }>(`/api/tasks/${id}`).then((r) => r.task),
  nfts: (owner: string) => call<{ nfts: Nft[] }>(`/api/nfts/${owner}`).then((r) => r.nfts),
  outputs: (viewer: string) =>
    call<{ outputs: OutputView[] }>(`/api/outputs?viewer=${viewer}&limit=12`).then((r) => r.outputs),
  /** Has the gateway hold a conversation too long for the ledger's prompt. */
  holdInput: (conversation: string) =>
    call<InputRef>("/api/inputs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: conversation,
    }),
  /** Has the gateway hold an image (PNG or JPEG) as a task's input. */
  holdImage: (bytes: Uint8Array, type: string) =>
    call<InputRef & { width: number; height: number }>("/api/inputs", {
      method: "POST",
      headers: { "content-type": type },
      body: bytes.slice().buffer as ArrayBuffer,
    }),
  /** Relays a signed envelope; `pow` is the `X-FlowNet-Pow` proof a Flow sponsor asks
   * of a `create_account`. */
  relay: (env: SignedEnvelope, pow?: string) =>
    call<{ receipt: Receipt }>("/api/relay", {
      method: "POST",
      headers: { "content-type": "application/json", ...(pow ? { "x-flownet-pow": pow } : {}) },
      body: JSON.stringify(env),
    }).then((r) => r.receipt),
  /** The Flow sponsor's proof-of-work challenge for a new account of `publicKey`, or
   * null when it asks none. */
  flowChallenge: (publicKey: string) =>
    call<Challenge | null>("/api/flow/challenge", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ public_key: publicKey }),
    }),
};

export interface FlowConfig {
  network: string;
  chain_id: string;
  access_node: string | null;
  contracts: Record<string, string | null>;
  marketplace: string;
  event_prefix: string;
  payer: string | null;
  payer_key_index: number;
  faucet: boolean;
  create_account: boolean;
  discovery_wallet: string | null;
  gas_limit: number;
}

/** The gateway's Flow side, or undefined when it serves the embedded ledger. */
export async function flowConfig(): Promise<FlowConfig | undefined> {
  try {
    return await call<FlowConfig>("/api/flow/config");
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return undefined;
    throw e;
  }
}

/** The URL of an output's bytes, fetched from its node by the gateway if needed. */
export function blobUrl(sha256: string, task: number): string {
  return `/api/blobs/${sha256}?task=${task}`;
}

export type { Action };
