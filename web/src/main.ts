// The page: a key made in the browser, an account on first use, welcome tokens, the
// node table, a prompt paid for with an envelope the browser signs, the task's life
// from server-sent events, the verified output, the user's outputs and ratings of
// others'. Everything user-supplied is set as text, never as HTML.

import "./style.css";
import {
  ApiError,
  type Account,
  type FlowConfig,
  type ModelView,
  type NodeView,
  type Task,
  api,
  blobUrl,
  flowConfig,
} from "./api";
import { type Message, conversationPrompt, displayMime, meteredCost, readChatStream } from "./chat";
import { type Embeddings, cosine, embeddingMaxUnits, embeddingPrompt, embeddingTexts, readEmbeddings } from "./embed";
import { type Action, type InputRef, formatAmount, hex } from "./encoding";
import { IMAGE_KINDS, type Reading, imageProblem, imageType, isWav, readLabels, readReading, wavSeconds } from "./image";
import { proofHeader } from "./pow";
// FCL is loaded only on Flow: the embedded ledger's page stays small.
type FlowModule = typeof import("./flow");
import {
  type KeyFile,
  type StoredKey,
  flowAddress,
  forgetKey,
  importKeyFile,
  loadKey,
  makeKey,
  rememberFlowAddress,
  sign,
} from "./keys";

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`missing #${id}`);
  return e as T;
};

type Attrs = Record<string, string | boolean | undefined>;

/** Makes an element; strings become text nodes. */
function el(tag: string, attrs: Attrs = {}, ...children: (Node | string | null | undefined)[]): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

const state: {
  key?: StoredKey;
  /** The key file, while this page still holds it (right after making or importing). */
  keyFile?: KeyFile;
  ledger?: string;
  account?: Account;
  nodes: NodeView[];
  models: Map<string, ModelView>;
  maxPromptBytes: number;
  /** The largest request body the gateway takes: the longest conversation it holds. */
  maxBodyBytes: number;
  /** The largest image the gateway holds as a task's input. */
  maxImageBytes: number;
  events?: EventSource;
  /** On Flow: the gateway's Flow side (FCL sends the transactions). */
  flow?: FlowConfig;
  /** On Flow: the page's FCL side. */
  fcl?: FlowModule;
  /** On Flow: the address of a user logged in with a Flow wallet instead of a key. */
  wallet?: string;
} = { nodes: [], models: new Map(), maxPromptBytes: 4096, maxBodyBytes: 65536, maxImageBytes: 4 << 20 };

/** The account the page acts for: the wallet's, the key's Flow account, or the key's
 * own address on the embedded ledger. */
function me(): string | undefined {
  if (state.wallet) return state.wallet;
  const key = state.key;
  if (!key) return undefined;
  return state.flow ? flowAddress(state.flow.network, key.publicKey) : key.address;
}

function notice(text: string): void {
  $("notice").textContent = text;
}

function showError(e: unknown): void {
  const box = $("error");
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
}

function clearError(): void {
  const box = $("error");
  box.hidden = true;
  box.textContent = "";
}

// Which ledger the gateway serves is known only once /api/info (and on Flow its
// config) has loaded: actions wait for it, so a key file chosen at once is not
// looked up on the wrong ledger.
let markReady: () => void = () => {};
const ready = new Promise<void>((resolve) => {
  markReady = resolve;
});

/** Runs a user action with its button disabled, showing any error. */
async function act(button: HTMLButtonElement | null, f: () => Promise<void>): Promise<void> {
  clearError();
  if (button) button.disabled = true;
  try {
    await ready;
    await f();
  } catch (e) {
    showError(e);
  } finally {
    if (button) button.disabled = false;
  }
}

// ---- signing and sending ----------------------------------------------------------

/** Signs `action` with the next sequence number and relays it; when another tab took
 * that number first, retries once with the next. */
async function send(action: Action): Promise<{ outcome: { task?: number; nft?: number; credited?: number; account?: string } }> {
  if (state.flow && state.fcl && action.type !== "create_account") {
    // On Flow the browser signs the Flow transaction itself; the sponsor pays.
    const f = state.fcl;
    const address = me();
    if (!address) throw new Error("make or import a key, or log in with a Flow wallet, first");
    const user = state.wallet ? f.walletAuthz : state.key ? f.keyAuthz(state.key, address) : undefined;
    if (!user) throw new Error("make or import a key first");
    return f.sendAction(state.flow, user, action);
  }
  const key = state.key;
  if (!key) throw new Error("make or import a key first");
  if (!state.ledger) state.ledger = (await api.info()).ledger;
  // On Flow the sponsor prices a new account with a proof of work, done here.
  let pow: string | undefined;
  if (state.flow && action.type === "create_account") {
    const challenge = await api.flowChallenge(key.publicKey);
    if (challenge) {
      notice("Working out the sponsor's proof of work (a few seconds)…");
      pow = await proofHeader(challenge, key.publicKey);
    }
  }
  for (let attempt = 0; ; attempt++) {
    const account = action.type === "create_account" ? undefined : await api.account(me() ?? key.address);
    if (action.type !== "create_account" && !account) throw new Error("your account is not registered yet");
    const env = await sign(key, {
      ledger: state.ledger,
      signer: key.address,
      sequence: account?.sequence ?? 0,
      action,
    });
    try {
      return await api.relay(env, pow);
    } catch (e) {
      if (e instanceof ApiError && e.code === "bad_sequence" && attempt === 0) continue;
      throw e;
    }
  }
}

/** Registers the key as an account the first time it is used. */
async function ensureAccount(): Promise<void> {
  const key = state.key;
  if (state.wallet) {
    // A wallet's account exists; it is set up for FlowNet by its first transaction.
    state.account = await api.account(state.wallet);
    return;
  }
  if (!key) return;
  const address = me();
  state.account = address ? await api.account(address) : undefined;
  if (!state.account) {
    notice(state.flow ? "Creating your Flow account (the sponsor pays)…" : "Registering your key as an account…");
    const receipt = await send({ type: "create_account", public_key: key.publicKey, hash_algo: "SHA2_256" });
    if (state.flow) {
      const created = receipt.outcome.account;
      if (!created) throw new Error("the gateway did not say which Flow account it created");
      rememberFlowAddress(state.flow.network, key.publicKey, created);
      if (state.keyFile) state.keyFile.flow_addresses = { ...state.keyFile.flow_addresses, [state.flow.network]: created };
    }
    state.account = await api.account(me() ?? key.address);
    notice(state.flow ? `Your Flow account ${me()} is created.` : "Your account is registered.");
  }
}

// ---- the key ----------------------------------------------------------------------

function renderKey(): void {
  const key = state.key;
  const address = me();
  const signedIn = !!key || !!state.wallet;
  $("no-key").hidden = signedIn;
  $("has-key").hidden = !signedIn;
  $("wallet-login").hidden = !state.flow?.discovery_wallet;
  $("network").textContent = state.flow
    ? `On Flow ${state.flow.network}: your transactions are signed in this browser${state.wallet ? " by your wallet" : ""} and paid by the sponsor ${state.flow.payer ?? "(none configured)"}.`
    : "";
  $("who").textContent = signedIn ? `Signed in as ${address ?? "…"}${state.wallet ? " (Flow wallet)" : ""}` : "Not signed in";
  for (const id of ["pay", "chat-send"]) ($(id) as HTMLButtonElement).disabled = !signedIn;
  if (!signedIn) return;
  $("address").textContent = address ?? "…";
  $("export-key").hidden = !!state.wallet;
  $("forget-key").hidden = !!state.wallet;
  $("wallet-logout").hidden = !state.wallet;
  if (state.wallet) {
    $("export-note").textContent = "Your Flow wallet signs your transactions; FlowNet's sponsor pays their fees.";
    renderAccount();
    return;
  }
  const exportButton = $<HTMLButtonElement>("export-key");
  exportButton.disabled = !state.keyFile;
  $("export-note").textContent = state.keyFile
    ? "Save your key file now and keep it private: it is the only way to use this account in another browser. This browser keeps the key so that it can sign but never read it out, so the file cannot be saved later."
    : "This browser keeps your key so that it can sign but never read it out; the key file could be saved only when the key was made or imported.";
  renderAccount();
}

function renderAccount(): void {
  const a = state.account;
  $("balance").textContent = a ? a.balance : "…";
  $("faucet").hidden = !a || a.faucet_used || (!!state.flow && !state.flow.faucet);
  updatePrice();
}

function downloadKeyFile(): void {
  const f = state.keyFile;
  if (!f) return;
  const url = URL.createObjectURL(new Blob([JSON.stringify(f, null, 2)], { type: "application/json" }));
  const a = el("a", { href: url, download: `flownet-key-${f.address}.json` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- nodes and the prompt form ----------------------------------------------------

const pct = (x: number | null) => (x === null ? "none yet" : `${Math.round(x * 100)}%`);

function renderNodes(): void {
  const rows: { node: NodeView; offer: NodeView["models"][number] }[] = [];
  for (const node of state.nodes) for (const offer of node.models) rows.push({ node, offer });
  // The ledger's ranking per offer: the node's score times its reliability's lower
  // bound, then this offer's price (a node's cheapest offer of another model does not
  // lift this one); a stable sort keeps the gateway's order after that.
  rows.sort((a, b) => (b.node.rank_key ?? 0) - (a.node.rank_key ?? 0) || a.offer.price_units - b.offer.price_units);
  const body = $("node-rows");
  body.replaceChildren();
  if (rows.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: "6" }, "No node has registered yet.")));
    return;
  }
  for (const { node, offer } of rows) {
    body.append(
      el(
        "tr",
        { class: node.active ? undefined : "paused" },
        // data-label names each cell where narrow screens stack the table's rows.
        el("th", { scope: "row", "data-label": "Node" },
          el("span", {}, node.name, el("br"), el("code", { class: "small" }, node.owner), node.active ? null : " (paused)")),
        el("td", { "data-label": "Model" },
          el("span", {}, offer.model_id, offer.kind ? el("span", { class: "small" }, ` ${offer.kind}`) : null)),
        el("td", { class: "num", "data-label": "Price" }, el("span", {}, `${offer.price} FLOWNET${offer.unit === "thousand_tokens" ? " per 1,000 tokens" : ""}`)),
        el("td", { class: "num", "data-label": "Score" },
          el("span", {}, `${node.score.toFixed(2)}`, el("span", { class: "small" }, ` (${node.ratings} ${node.ratings === 1 ? "rating" : "ratings"}, ${node.rated_paid ?? "0"} FLOWNET paid)`))),
        el("td", { class: "num", "data-label": "Reliability" },
          el("span", {}, pct(node.reliability),
            el("span", { class: "small" }, ` (${node.fulfilled ?? 0} delivered, ${node.missed ?? 0} missed, ${node.declined ?? 0} declined)`))),
        el("td", { class: "num", "data-label": "Community" },
          el("span", {}, node.community_score === null ? "none yet" : `${node.community_score.toFixed(2)} (${node.community_ratings})`)),
      ),
    );
  }
}

/** Kinds the form can ask for: with a text prompt, or an image (`IMAGE_KINDS`). */
const FORM_KINDS = new Set(["text-to-image", "text-generation", "embedding", "text-to-speech", ...IMAGE_KINDS]);

function renderModelChoice(): void {
  const select = $<HTMLSelectElement>("model");
  const before = select.value;
  const seen = new Map<string, string | null>();
  for (const n of state.nodes.filter((n) => n.active))
    for (const m of n.models) if (!seen.has(m.model_id)) seen.set(m.model_id, m.kind);
  select.replaceChildren();
  for (const [id, kind] of seen) {
    const usable = kind === null || FORM_KINDS.has(kind);
    select.append(
      el("option", { value: id, disabled: !usable }, usable ? id : `${id} (${kind}: use the CLI)`),
    );
  }
  const first = [...select.options].find((o) => !o.disabled);
  select.value = [...select.options].some((o) => o.value === before && !o.disabled) ? before : (first?.value ?? "");
  renderNodeChoice();
}

function renderNodeChoice(): void {
  const model = $<HTMLSelectElement>("model").value;
  const select = $<HTMLSelectElement>("node");
  const before = select.value;
  select.replaceChildren();
  const offers = state.nodes
    .filter((n) => n.active)
    .flatMap((n) => n.models.filter((m) => m.model_id === model).map((m) => ({ n, m })));
  for (const { n, m } of offers) {
    select.append(
      el("option", { value: n.owner }, `${n.name}: ${m.price} FLOWNET${m.unit === "thousand_tokens" ? " per 1,000 tokens" : ""}, score ${n.score.toFixed(2)}`),
    );
  }
  if (offers.some((o) => o.n.owner === before)) select.value = before;
  const meta = state.models.get(model);
  $("mapping").textContent = meta ? `How ${model} reads a prompt: ${meta.prompt_mapping}` : "";
  renderChatMode(model);
  const embedding = isEmbeddingModel(model);
  $("prompt-label").textContent = embedding ? "Texts to embed (one per line)" : modelKind(model) === "text-to-speech" ? "Text to speak" : "Prompt";
  $<HTMLTextAreaElement>("prompt").rows = embedding ? 5 : 3;
  // A model that reads an image takes a file instead of a prompt.
  const image = takesImage(model);
  const chatting = isChatModel(model);
  $("prompt-field").hidden = chatting || image;
  $("image-field").hidden = chatting || !image;
  $<HTMLTextAreaElement>("prompt").required = !image;
  $<HTMLInputElement>("image").required = image;
  $("image-hint").textContent = image
    ? `${modelKind(model) === "ocr" ? "The node reads the text in it" : "The node says what it shows"}; it goes to the node by its SHA-256, at most ${formatBytes(state.maxImageBytes)}.`
    : "";
  updatePrice();
}

function modelKind(model: string): string | undefined {
  const offerKind = state.nodes.flatMap((n) => n.models).find((m) => m.model_id === model)?.kind;
  return state.models.get(model)?.kind ?? offerKind ?? undefined;
}

function takesImage(model: string): boolean {
  const kind = modelKind(model);
  return kind !== undefined && IMAGE_KINDS.has(kind);
}

function formatBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(n % (1 << 20) ? 1 : 0)} MiB` : `${Math.round(n / 1024)} KiB`;
}

/** The chosen image file's bytes, checked as the node will check them. */
async function chosenImage(): Promise<Uint8Array> {
  const file = $<HTMLInputElement>("image").files?.[0];
  if (!file) {
    $("image").focus();
    throw new Error("choose an image file first");
  }
  const bytes = new Uint8Array(await file.arrayBuffer());
  const problem = imageProblem(bytes, state.maxImageBytes);
  if (problem) throw new Error(problem);
  return bytes;
}

/** Has the gateway hold `bytes` as a task's input and checks that it names them. */
async function holdImage(bytes: Uint8Array): Promise<InputRef> {
  const held = await api.holdImage(bytes, imageType(bytes) ?? "image/png");
  const input = { sha256: held.sha256, size: held.size, uri: held.uri };
  const mine = await sha256Hex(bytes.slice().buffer as ArrayBuffer);
  if (input.sha256 !== mine || input.size !== bytes.length)
    throw new Error("The gateway answered with another hash for the image: reload the page and try again.");
  return input;
}

function isEmbeddingModel(model: string): boolean {
  const offerKind = state.nodes.flatMap((n) => n.models).find((m) => m.model_id === model)?.kind;
  return (state.models.get(model)?.kind ?? offerKind) === "embedding";
}

/** What the prompt box asks for: the prompt to sign, and for a metered offer the most
 * tokens it escrows for (an embedding model's bound on its texts). */
function promptRequest(c: NonNullable<ReturnType<typeof chosenOffer>>, box: string): { prompt: string; maxUnits?: number } {
  if (isEmbeddingModel(c.offer.model_id)) {
    const texts = embeddingTexts(box);
    return { prompt: embeddingPrompt(texts), maxUnits: embeddingMaxUnits(texts) };
  }
  return { prompt: box };
}

/** The escrow of the prompt box's request at `c`'s price, in base units. */
function promptEscrow(c: NonNullable<ReturnType<typeof chosenOffer>>, maxUnits: number | undefined): number {
  return c.offer.unit === "thousand_tokens" ? meteredCost(c.offer.price_units, maxUnits ?? 256) : c.offer.price_units;
}

function chosenOffer() {
  const model = $<HTMLSelectElement>("model").value;
  const owner = $<HTMLSelectElement>("node").value;
  const node = state.nodes.find((n) => n.owner === owner);
  const offer = node?.models.find((m) => m.model_id === model);
  return node && offer ? { node, offer } : undefined;
}

function updatePrice(): void {
  updateChatPrice();
  const c = chosenOffer();
  const price = $("price");
  if (!c) {
    price.textContent = "No node offers a model you can prompt yet.";
    return;
  }
  if (c.offer.unit === "thousand_tokens" && isEmbeddingModel(c.offer.model_id)) {
    const texts = embeddingTexts($<HTMLTextAreaElement>("prompt").value);
    const max = embeddingMaxUnits(texts);
    const escrow = promptEscrow(c, max);
    const short = state.account && state.account.balance_units < escrow;
    price.textContent =
      `${c.offer.price} FLOWNET per 1,000 tokens. ${texts.length} text${texts.length === 1 ? "" : "s"}: you escrow ${formatAmount(escrow)} FLOWNET for at most ${max} tokens; you pay for the tokens ${c.node.name} reads and the rest comes back.` +
      (short ? " Your balance is too low: get welcome tokens first." : "");
    return;
  }
  const short = state.account && state.account.balance_units < c.offer.price_units;
  price.textContent =
    `You pay ${c.offer.price} FLOWNET into escrow. ${c.node.name} is paid when it delivers; if it does not, you get it back.` +
    (short ? " Your balance is too low: get welcome tokens first." : "");
}

// ---- a task's life ----------------------------------------------------------------

const STEPS = ["submitted", "claimed", "running", "delivered"];

function resetSteps(): void {
  for (const li of $("steps").querySelectorAll("li")) {
    li.classList.remove("done", "skipped");
    li.removeAttribute("aria-current");
  }
  $("steps").dataset.seen = "";
  $("task-end").textContent = "";
  $("result").replaceChildren();
}

function markStep(step: string): void {
  const steps = $("steps");
  steps.dataset.seen = steps.dataset.seen ? `${steps.dataset.seen},${step}` : step;
  const idx = STEPS.indexOf(step);
  for (const li of steps.querySelectorAll<HTMLLIElement>("li")) {
    const i = STEPS.indexOf(li.dataset.step ?? "");
    if (i === idx) {
      li.classList.add("done");
      li.setAttribute("aria-current", "step");
    } else {
      li.removeAttribute("aria-current");
      // A node in another process does not report "running": it is skipped, not failed.
      if (i < idx && !li.classList.contains("done")) li.classList.add("skipped");
    }
  }
}

function follow(taskId: number): void {
  state.events?.close();
  resetSteps();
  $("status").hidden = false;
  $("status-h").textContent = `Your task #${taskId}`;
  const es = new EventSource(`/api/tasks/${taskId}/events`);
  state.events = es;
  const data = (e: Event) => JSON.parse((e as MessageEvent<string>).data) as { task: Task };
  for (const step of ["submitted", "claimed", "running"]) es.addEventListener(step, () => markStep(step));
  es.addEventListener("delivered", (e) => {
    markStep("delivered");
    es.close();
    void act(null, () => showResult(data(e).task));
  });
  for (const end of ["expired", "cancelled", "declined"]) {
    es.addEventListener(end, (e) => {
      es.close();
      stopCountdown();
      const t = data(e).task;
      const why = end === "declined" ? ` by its node: ${t.declined_reason ?? "no reason given"}` : "";
      $("task-end").textContent = `The task was ${end}${why}. Your escrow of ${t.refunded ?? t.price} FLOWNET is back in your balance.`;
      void refreshAccount();
    });
  }
  for (const step of ["submitted", "claimed", "running"]) es.addEventListener(step, (e) => startCountdown(data(e).task));
  es.addEventListener("delivered", () => stopCountdown());
  es.addEventListener("overdue", (e) => {
    // The deadline passed: this waiter expires the task itself (anyone may), so the
    // escrow comes back without a click; the button stays for a failed try.
    const t = data(e).task;
    stopCountdown();
    const end = $("task-end");
    end.replaceChildren(`The node missed its deadline: getting your escrow back… `);
    const b = el("button", { type: "button" }, "Get my escrow back") as HTMLButtonElement;
    const expire = () =>
      act(b, async () => {
        await send({ type: "expire", task: t.id });
      });
    b.addEventListener("click", () => void expire());
    end.append(b);
    void expire();
  });
}

let countdown: ReturnType<typeof setInterval> | undefined;

function stopCountdown(): void {
  if (countdown !== undefined) clearInterval(countdown);
  countdown = undefined;
  $("task-timer").textContent = "";
}

/** Shows the seconds left before the task's current deadline (claim while open,
 * fulfil once claimed), by this browser's clock. */
function startCountdown(t: Task): void {
  stopCountdown();
  const deadline = t.status === "claimed" || t.claimed_at ? t.fulfil_deadline : t.claim_deadline;
  if (deadline === null || deadline === undefined) return;
  const tick = () => {
    const left = Math.max(0, Math.round(deadline - Date.now() / 1000));
    $("task-timer").textContent = `${t.claimed_at ? "The node has" : "A node has"} ${left} s left to ${t.claimed_at ? "deliver" : "claim the task"}; past that your escrow comes back.`;
  };
  tick();
  countdown = setInterval(tick, 1000);
}

async function sha256Hex(bytes: ArrayBuffer): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

function fact(label: string, value: Node | string): HTMLElement {
  return el("div", {}, el("dt", {}, label), el("dd", {}, value));
}

async function showResult(task: Task): Promise<void> {
  const out = task.result;
  if (!out) return;
  const res = await fetch(blobUrl(out.sha256, task.id));
  if (!res.ok) throw new Error(`fetching the output failed: ${res.status}`);
  const bytes = await res.arrayBuffer();
  const got = await sha256Hex(bytes);
  const ok = got === out.sha256;
  let view: HTMLElement;
  const mime = displayMime(state.models.get(task.model_id)?.output_mime);
  const embeddings = isEmbeddingModel(task.model_id) ? readEmbeddings(bytes) : null;
  const kind = modelKind(task.model_id);
  const reading = kind === "ocr" ? readReading(bytes) : null;
  const labels = kind === "image-classification" ? readLabels(bytes) : null;
  const wav = kind === "text-to-speech" && isWav(new Uint8Array(bytes));
  if (wav) {
    const url = URL.createObjectURL(new Blob([bytes], { type: "audio/wav" }));
    view = el(
      "div",
      { class: "speech-output" },
      el("audio", { controls: "", src: url, id: "result-audio", "aria-label": `Speech of task ${task.id}` }),
      el("p", { class: "small", id: "result-duration" }, `${wavSeconds(new Uint8Array(bytes)).toFixed(2)} s of speech`),
      el("a", { href: url, download: `task-${task.id}.wav` }, "Download the WAV file"),
    );
  } else if (reading) {
    view = readingView(reading);
  } else if (labels) {
    view = el(
      "ol",
      { class: "labels", id: "result-labels" },
      ...labels.map((l) => el("li", {}, `${l.label} `, el("span", { class: "small" }, `${(l.score * 100).toFixed(1)}%`))),
    );
  } else if (mime) {
    const url = URL.createObjectURL(new Blob([bytes], { type: mime }));
    view = el("img", { src: url, alt: `Output of task ${task.id} for the prompt “${task.prompt}”`, id: "result-image" });
  } else if (embeddings) {
    view = embeddingView(embeddings, task);
  } else {
    view = el("pre", { class: "text-output" }, new TextDecoder().decode(bytes));
  }
  const facts = el(
    "dl",
    { class: "facts" },
    fact("SHA-256", el("code", { id: "result-sha" }, got)),
    fact("Check", el("span", { id: "result-check", class: ok ? "ok" : "bad" }, ok ? "matches the ledger" : `DOES NOT match the ledger (${out.sha256})`)),
    fact("IPFS CID", el("code", { id: "result-cid" }, out.cid ?? "none (over one block: served by its node)")),
    fact("Model", el("code", { id: "result-model" }, task.model_id)),
    fact("Weights SHA-256", el("code", { id: "result-weights" }, task.weights_sha256)),
    fact("Task", `#${task.id}`),
    fact("NFT", el("span", { id: "result-nft" }, task.nft === null ? "none" : `#${task.nft}`)),
    fact("Paid", `${formatAmount(task.price)} FLOWNET`),
  );
  $("result").replaceChildren(el("figure", { class: "output" }, view, el("figcaption", {}, facts)), rateForm(task, "Rate your output (this moves the node's score)"));
  await Promise.all([refreshAccount(), refreshNfts(), refreshNodes()]);
}

/** An OCR output: the text read, line by line, with each line's confidence. */
function readingView(r: Reading): HTMLElement {
  const n = r.lines.length;
  return el(
    "div",
    { class: "ocr-output" },
    el("p", {}, `${n} line${n === 1 ? "" : "s"} of text read in the ${r.width}×${r.height} image:`),
    el("pre", { class: "text-output", id: "result-text" }, r.text),
    el(
      "details",
      {},
      el("summary", {}, "Lines and where they are"),
      el(
        "ol",
        { class: "ocr-lines" },
        ...r.lines.map((l) =>
          el("li", {}, `${l.text} `, el("span", { class: "small" }, `(${(l.score * 100).toFixed(1)}%, at ${l.box[0].join(",")}–${l.box[2].join(",")})`)),
        ),
      ),
    ),
  );
}

/** An embedding output: what was embedded, the texts' cosine similarities, and the
 * first numbers of each vector (the whole JSON is one click away). */
function embeddingView(e: Embeddings, task: Task): HTMLElement {
  let texts: string[];
  try {
    const v = JSON.parse(task.prompt) as { input?: unknown };
    texts = Array.isArray(v.input) ? v.input.map(String) : typeof v.input === "string" ? [v.input] : [task.prompt];
  } catch {
    texts = [task.prompt];
  }
  const n = e.embeddings.length;
  const summary = el(
    "p",
    { id: "result-embeddings" },
    `${n} vector${n === 1 ? "" : "s"} of ${e.dimensions} dimensions from ${e.usage.prompt_tokens} tokens` +
      (e.truncated.some((t) => t) ? " (some texts were cut at the model's length)" : "") +
      ".",
  );
  const parts: HTMLElement[] = [summary];
  if (n >= 2 && n <= 12) {
    const head = el("tr", {}, el("th", { scope: "col" }, "cosine"), ...e.embeddings.map((_, j) => el("th", { scope: "col" }, `#${j + 1}`)));
    const rows = e.embeddings.map((a, i) =>
      el(
        "tr",
        {},
        el("th", { scope: "row", title: texts[i] ?? "" }, `#${i + 1} ${(texts[i] ?? "").slice(0, 40)}`),
        ...e.embeddings.map((b, j) => el("td", { class: "num" }, i === j ? "1" : cosine(a, b).toFixed(3))),
      ),
    );
    parts.push(el("table", { class: "similarity", id: "result-similarity" }, el("caption", {}, "How alike the texts are (1 = same meaning)"), el("thead", {}, head), el("tbody", {}, ...rows)));
  }
  const preview = e.embeddings.map((v, i) => `#${i + 1} [${v.slice(0, 6).map((x) => x.toFixed(4)).join(", ")}, …]`).join("\n");
  parts.push(el("details", {}, el("summary", {}, "Vectors"), el("pre", { class: "text-output" }, preview)));
  return el("div", { class: "embedding-output" }, ...parts);
}

// ---- the chat view (text-generation models) ---------------------------------------

interface Turn {
  messages: Message[];
  /** The answer being followed: its task, and the way to stop following it. */
  active?: { task: number; abort: AbortController; bubble: HTMLElement };
}

const chat: Turn & { model?: string } = { messages: [] };

function isChatModel(model: string): boolean {
  const offerKind = state.nodes.flatMap((n) => n.models).find((m) => m.model_id === model)?.kind;
  return (state.models.get(model)?.kind ?? offerKind) === "text-generation";
}

/** Shows the chat view instead of the one-shot prompt for a text-generation model. */
function renderChatMode(model: string): void {
  const on = isChatModel(model);
  $("chat").hidden = !on;
  for (const id of ["prompt-field", "price", "pay"]) $(id).hidden = on;
  if (on && chat.model !== model) {
    // A conversation belongs to its model.
    if (chat.active) stopFollowing();
    chat.messages = [];
    $("chat-log").replaceChildren();
    clearChatError();
  }
  if (on) chat.model = model;
  $("chat-model").textContent = model;
}

function chatMaxTokens(): number {
  const n = Number($<HTMLInputElement>("chat-max").value);
  return Number.isInteger(n) && n >= 1 && n <= 4096 ? n : NaN;
}

function updateChatPrice(): void {
  const c = chosenOffer();
  const price = $("chat-price");
  if (!c || !isChatModel(c.offer.model_id)) {
    price.textContent = "";
    return;
  }
  const max = chatMaxTokens();
  if (Number.isNaN(max)) {
    price.textContent = "Set the most tokens per answer to a whole number from 1 to 4096.";
    return;
  }
  const metered = c.offer.unit === "thousand_tokens";
  const escrow = metered ? meteredCost(c.offer.price_units, max) : c.offer.price_units;
  const short = state.account && state.account.balance_units < escrow;
  price.textContent =
    (metered
      ? `Each answer escrows ${formatAmount(escrow)} FLOWNET (${max} tokens at ${c.offer.price} FLOWNET per 1,000); you pay for the tokens ${c.node.name} writes and the rest comes back.`
      : `Each answer costs ${c.offer.price} FLOWNET, paid into escrow until ${c.node.name} delivers.`) +
    (short ? " Your balance is too low: get welcome tokens first." : "");
}

function showChatError(e: unknown): void {
  const box = $("chat-error");
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
}

function clearChatError(): void {
  const box = $("chat-error");
  box.hidden = true;
  box.textContent = "";
}

function bubble(role: "user" | "assistant", text: string): HTMLElement {
  const b = el(
    "li",
    { class: `turn ${role}`, "data-role": role },
    el("p", { class: "speaker" }, role === "user" ? "You" : "Assistant"),
    el("p", { class: "text" }, text),
  );
  $("chat-log").append(b);
  return b;
}

function setChatBusy(busy: boolean): void {
  $<HTMLButtonElement>("chat-send").disabled = busy || !me();
  $("chat-stop").hidden = !busy;
  $<HTMLButtonElement>("chat-new").disabled = busy;
}

/** Sends the conversation with one more question as a task signed here, then follows
 * its answer. */
async function ask(): Promise<void> {
  const c = chosenOffer();
  if (!c) throw new Error("Choose a model and a node first.");
  const box = $<HTMLTextAreaElement>("chat-message");
  const question = box.value.trim();
  if (!question) {
    box.focus();
    throw new Error("Write a message first.");
  }
  const max = chatMaxTokens();
  if (Number.isNaN(max)) throw new Error("Set the most tokens per answer to a whole number from 1 to 4096.");
  const messages: Message[] = [...chat.messages, { role: "user", content: question }];
  const conversation = conversationPrompt(messages);
  const size = new TextEncoder().encode(conversation).length;
  if (size > state.maxBodyBytes)
    throw new Error(
      `The conversation with this message is ${size} bytes; this gateway holds at most ${state.maxBodyBytes}. Start a new conversation, or send a shorter message.`,
    );
  const metered = c.offer.unit === "thousand_tokens";
  const escrow = metered ? meteredCost(c.offer.price_units, max) : c.offer.price_units;
  if (state.account && state.account.balance_units < escrow)
    throw new Error(`An answer escrows ${formatAmount(escrow)} FLOWNET and your balance is ${state.account.balance}: get welcome tokens, or lower the most tokens per answer.`);
  // A conversation longer than the ledger's prompt goes as an input the gateway holds
  // by its hash; the node fetches it and checks it against the hash signed here.
  let prompt = conversation;
  let input: InputRef | undefined;
  if (size > state.maxPromptBytes) {
    const held = await api.holdInput(conversation);
    // Only what the Submit signs: the CID the gateway adds is for people, not the ledger.
    input = { sha256: held.sha256, size: held.size, uri: held.uri };
    const mine = await sha256Hex(new TextEncoder().encode(conversation).buffer as ArrayBuffer);
    if (input.sha256 !== mine || input.size !== size)
      throw new Error("The gateway answered with another hash for the conversation: reload the page and try again.");
    prompt = `sha256:${input.sha256}`;
  }
  const receipt = await send({
    type: "submit",
    node: c.node.owner,
    model_id: c.offer.model_id,
    prompt,
    params: JSON.stringify({ max_tokens: max }),
    ...(input ? { input } : {}),
    // The escrow seen here is the most this answer may cost.
    max_price: escrow,
    ...(metered ? { max_units: max } : {}),
  });
  const id = receipt.outcome.task;
  if (id === undefined) throw new Error("The ledger did not return a task id: try again.");
  box.value = "";
  bubble("user", question).dataset.task = String(id);
  const answer = bubble("assistant", "");
  answer.dataset.task = String(id);
  answer.classList.add("streaming");
  void refreshAccount();
  await followAnswer(id, messages, answer);
}

/** Follows task `id`'s answer into `answer` as it streams, then checks it. */
async function followAnswer(id: number, messages: Message[], answer: HTMLElement): Promise<void> {
  const abort = new AbortController();
  chat.active = { task: id, abort, bubble: answer };
  setChatBusy(true);
  const text = answer.querySelector<HTMLElement>(".text")!;
  let streamed = "";
  try {
    const res = await fetch(`/api/tasks/${id}/stream`, { signal: abort.signal });
    if (!res.ok || !res.body) {
      const body = (await res.json().catch(() => undefined)) as { error?: { message?: string } } | undefined;
      throw new Error(`Following task #${id} failed: ${body?.error?.message ?? res.statusText}. Its answer will be in your outputs once delivered.`);
    }
    const end = await readChatStream(res.body, (piece) => {
      streamed += piece;
      text.textContent = streamed;
    });
    if (end.error) throw new Error(`${end.error.message}.`);
    if (!end.done) throw new Error(`The answer's stream broke off: task #${id}'s answer will be in your outputs once delivered.`);
    await checkAnswer(id, messages, answer, streamed);
  } catch (e) {
    if (abort.signal.aborted) return;
    answer.classList.add("failed");
    throw e;
  } finally {
    answer.classList.remove("streaming");
    if (chat.active?.task === id) chat.active = undefined;
    setChatBusy(false);
  }
}

/** Fetches the delivered output, checks its hash against the ledger's and its text
 * against what streamed, and shows what the answer cost. */
async function checkAnswer(id: number, messages: Message[], answer: HTMLElement, streamed: string): Promise<void> {
  const task = await api.task(id);
  const out = task.result;
  if (task.status !== "fulfilled" || !out) throw new Error(`Task #${id} is ${task.status}: no answer was delivered.`);
  const res = await fetch(blobUrl(out.sha256, id));
  if (!res.ok) throw new Error(`Fetching task #${id}'s answer failed (${res.status}): try again in a moment.`);
  const bytes = await res.arrayBuffer();
  const got = await sha256Hex(bytes);
  const ok = got === out.sha256;
  let delivered: string;
  try {
    delivered = (JSON.parse(new TextDecoder().decode(bytes)) as { text: string }).text;
  } catch {
    delivered = new TextDecoder().decode(bytes);
  }
  const text = answer.querySelector<HTMLElement>(".text")!;
  text.textContent = delivered;
  if (delivered !== streamed) answer.append(el("p", { class: "note" }, "The streamed text differed from the delivered answer: this is the delivered one."));
  const paid = task.price - (task.refunded ?? 0);
  answer.append(
    el(
      "dl",
      { class: "facts" },
      fact("Escrowed", el("span", { class: "escrowed" }, `${formatAmount(task.price)} FLOWNET`)),
      fact("Paid", el("span", { class: "paid" }, `${formatAmount(paid)} FLOWNET${task.units != null ? ` for ${task.units} tokens` : ""}`)),
      fact("Refunded", el("span", { class: "refunded" }, `${formatAmount(task.refunded ?? 0)} FLOWNET`)),
      fact("SHA-256", el("code", { class: "sha" }, got)),
      fact("Check", el("span", { class: ok ? "check ok" : "check bad" }, ok ? "matches the ledger" : `DOES NOT match the ledger (${out.sha256})`)),
    ),
  );
  answer.dataset.escrowed = String(task.price);
  answer.dataset.paid = String(paid);
  answer.dataset.refunded = String(task.refunded ?? 0);
  if (!ok) throw new Error(`Task #${id}'s answer does not match its hash on the ledger: do not trust it, and rate the node low.`);
  // The answer joins the conversation only once checked.
  chat.messages = [...messages, { role: "assistant", content: delivered }];
  await Promise.all([refreshAccount(), refreshNfts()]);
}

function stopFollowing(): HTMLElement | undefined {
  const active = chat.active;
  if (!active) return undefined;
  chat.active = undefined;
  active.abort.abort();
  active.bubble.classList.remove("streaming");
  active.bubble.classList.add("stopped");
  setChatBusy(false);
  return active.bubble;
}

/** Stops following the answer; a task no node took yet is cancelled for a refund. */
async function stop(): Promise<void> {
  const active = chat.active;
  const b = stopFollowing();
  if (!active || !b) return;
  const task = await api.task(active.task);
  let note: string;
  if (task.status === "open") {
    await send({ type: "cancel", task: task.id });
    note = `Stopped. No node had taken task #${task.id} yet, so it is cancelled and its ${formatAmount(task.price)} FLOWNET escrow is back in your balance.`;
  } else if (task.status === "fulfilled") {
    note = `Stopped following. Task #${task.id} was already delivered; its answer is in your outputs.`;
  } else {
    note = `Stopped following. The node is still writing task #${task.id}'s answer: you pay for the tokens it writes and the rest of the escrow comes back.`;
  }
  b.append(el("p", { class: "note" }, note, " This answer is left out of the conversation."));
  await refreshAccount();
}

// ---- ratings ----------------------------------------------------------------------

let formCount = 0;

/** A 1–5 star choice with a button, for `task`. */
function rateForm(task: Task, legend: string, bounty?: string): HTMLElement {
  const n = ++formCount;
  const form = el("form", { class: "rate", "data-task": String(task.id) }) as HTMLFormElement;
  const set = el("fieldset", {}, el("legend", {}, legend)) as HTMLFieldSetElement;
  for (let s = 1; s <= 5; s++) {
    const id = `stars-${n}-${s}`;
    set.append(
      el(
        "span",
        { class: "star" },
        el("input", { type: "radio", name: `stars-${n}`, id, value: String(s), required: true, checked: s === 4 }),
        el("label", { for: id }, `${s} ${s === 1 ? "star" : "stars"}`),
      ),
    );
  }
  const button = el("button", { type: "submit" }, bounty ? `Rate and earn ${bounty} FLOWNET` : "Rate") as HTMLButtonElement;
  const result = el("p", { class: "rated", role: "status" });
  form.append(set, button, result);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const stars = Number(new FormData(form).get(`stars-${n}`));
    void act(button, async () => {
      const receipt = await send({ type: "rate", task: task.id, stars });
      const earned = formatAmount(receipt.outcome.credited ?? 0);
      result.textContent = `Rated ${stars} ${stars === 1 ? "star" : "stars"}. You earned ${earned} FLOWNET.`;
      set.disabled = true;
      button.remove();
      await refreshAccount();
    });
  });
  return form;
}

function thumb(sha: string, task: number, mime: string, alt: string): HTMLElement {
  if (!mime.startsWith("image/")) return el("p", { class: "small" }, `${mime} output`);
  return el("img", { src: blobUrl(sha, task), alt, loading: "lazy", width: "128", height: "128" });
}

async function refreshNfts(): Promise<void> {
  const address = me();
  const list = $("nfts");
  if (!address) {
    list.replaceChildren(el("li", { class: "empty" }, "Make a key to own outputs."));
    return;
  }
  const nfts = (await api.nfts(address)).reverse();
  list.replaceChildren(
    ...(nfts.length === 0
      ? [el("li", { class: "empty" }, "No outputs yet: ask a node above.")]
      : nfts.map((n) =>
          el(
            "li",
            { class: "card", "data-nft": String(n.id) },
            thumb(n.output.sha256, n.task, n.output.mime, `NFT ${n.id}: “${n.prompt}”`),
            el("p", { class: "title" }, `NFT #${n.id} · task #${n.task}`),
            el("p", { class: "prompt" }, `“${n.prompt}”`),
            el("dl", { class: "facts small" },
              fact("Model", n.model_id),
              fact("SHA-256", el("code", {}, n.output.sha256)),
              fact("IPFS", el("code", {}, n.output.cid ? `ipfs://${n.output.cid}` : "none")),
              fact("Weights", el("code", {}, n.weights_sha256))),
          ),
        )),
  );
}

async function refreshOutputs(): Promise<void> {
  const address = me();
  const list = $("outputs");
  if (!address) {
    list.replaceChildren(el("li", { class: "empty" }, "Make a key to rate outputs."));
    return;
  }
  const outputs = await api.outputs(address);
  // Keep the cards someone is rating; add new ones.
  const shown = new Set([...list.querySelectorAll<HTMLElement>("[data-task]")].map((e) => e.dataset.task));
  const fresh = outputs.filter((o) => !shown.has(String(o.task.id)));
  if (outputs.length === 0 && shown.size === 0) {
    list.replaceChildren(el("li", { class: "empty" }, "Nothing from others to rate yet."));
    return;
  }
  list.querySelector(".empty")?.remove();
  for (const o of fresh) {
    const t = o.task;
    const r = t.result;
    if (!r) continue;
    const card = el(
      "li",
      { class: "card", "data-task": String(t.id) },
      thumb(r.sha256, t.id, r.mime, `Task ${t.id}: “${t.prompt}”`),
      el("p", { class: "title" }, `Task #${t.id} · ${t.model_id}`),
      el("p", { class: "prompt" }, `“${t.prompt}”`),
    );
    if (o.rated_by_viewer) {
      card.append(el("p", { class: "rated" }, "You rated this."));
    } else {
      const bounty = o.bounty_next !== "0" ? o.bounty_next : undefined;
      card.append(rateForm(t, `Rate task #${t.id}`, bounty));
    }
    list.append(card);
  }
}

// ---- refreshing -------------------------------------------------------------------

async function refreshAccount(): Promise<void> {
  const address = me();
  if (!address) return;
  state.account = await api.account(address);
  renderAccount();
}

async function refreshNodes(): Promise<void> {
  state.nodes = await api.nodes();
  renderNodes();
  renderModelChoice();
}

async function refreshAll(): Promise<void> {
  await Promise.all([refreshNodes(), refreshAccount(), refreshNfts(), refreshOutputs()]);
}

// ---- wiring -----------------------------------------------------------------------

async function useKey(kept: { stored: StoredKey; file: KeyFile }): Promise<void> {
  state.key = kept.stored;
  state.keyFile = kept.file;
  renderKey();
  await ensureAccount();
  renderKey();
  await refreshAll();
}

function wire(): void {
  const make = $<HTMLButtonElement>("make-key");
  make.addEventListener("click", () =>
    act(make, async () => {
      await useKey(await makeKey());
      notice("Your key is made and registered. Save its key file to use it in another browser.");
      $("export-key").focus();
    }),
  );
  const file = $<HTMLInputElement>("import-key");
  file.addEventListener("change", () =>
    act(null, async () => {
      const f = file.files?.[0];
      if (!f) return;
      await useKey(await importKeyFile(await f.text()));
      file.value = "";
      notice("Key imported.");
    }),
  );
  $("export-key").addEventListener("click", downloadKeyFile);
  const login = $<HTMLButtonElement>("wallet-login");
  login.addEventListener("click", () =>
    act(login, async () => {
      if (!state.fcl) throw new Error("wallets log in on Flow only");
      state.wallet = await state.fcl.walletLogin();
      renderKey();
      await ensureAccount();
      renderKey();
      await refreshAll();
      notice(`Logged in with your Flow wallet as ${state.wallet}.`);
    }),
  );
  const logout = $<HTMLButtonElement>("wallet-logout");
  logout.addEventListener("click", () =>
    act(logout, async () => {
      await state.fcl?.walletLogout();
      state.wallet = undefined;
      state.account = undefined;
      renderKey();
      await refreshAll();
    }),
  );
  const forget = $<HTMLButtonElement>("forget-key");
  forget.addEventListener("click", () =>
    act(forget, async () => {
      if (!confirm("Forget this key in this browser? Without its key file you cannot use its account again.")) return;
      await forgetKey();
      state.key = undefined;
      state.keyFile = undefined;
      state.account = undefined;
      renderKey();
      await refreshAll();
      $("make-key").focus();
    }),
  );
  const faucet = $<HTMLButtonElement>("faucet");
  faucet.addEventListener("click", () =>
    act(faucet, async () => {
      const r = await send({ type: "faucet" });
      notice(`You received ${formatAmount(r.outcome.credited ?? 0)} FLOWNET.`);
      await refreshAccount();
      $("prompt").focus();
    }),
  );
  $("model").addEventListener("change", renderNodeChoice);
  $("node").addEventListener("change", updatePrice);
  $("prompt").addEventListener("input", updatePrice);
  const imageInput = $<HTMLInputElement>("image");
  imageInput.addEventListener("change", () => {
    const preview = $<HTMLImageElement>("image-preview");
    if (preview.src) URL.revokeObjectURL(preview.src);
    const file = imageInput.files?.[0];
    preview.hidden = !file;
    if (file) {
      preview.src = URL.createObjectURL(file);
      preview.alt = `The image to send: ${file.name}`;
    } else {
      preview.removeAttribute("src");
    }
  });
  const form = $<HTMLFormElement>("ask-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void act($<HTMLButtonElement>("pay"), async () => {
      const c = chosenOffer();
      if (!c) throw new Error("choose a model and a node");
      if (takesImage(c.offer.model_id)) {
        const bytes = await chosenImage();
        if (state.account && state.account.balance_units < c.offer.price_units)
          throw new Error("your balance is too low for this node's price: get welcome tokens first");
        // The image goes as the task's input, held by the gateway and named by the
        // hash signed here; the node fetches it and checks it against that hash.
        const input = await holdImage(bytes);
        const receipt = await send({
          type: "submit",
          node: c.node.owner,
          model_id: c.offer.model_id,
          prompt: `sha256:${input.sha256}`,
          params: "{}",
          input,
          max_price: c.offer.price_units,
        });
        const id = receipt.outcome.task;
        if (id === undefined) throw new Error("the ledger did not return a task id");
        follow(id);
        $("status-h").focus();
        await refreshAccount();
        return;
      }
      const box = $<HTMLTextAreaElement>("prompt").value;
      if (!box.trim()) {
        $("prompt").focus();
        throw new Error(isEmbeddingModel(c.offer.model_id) ? "write a text to embed first" : "write a prompt first");
      }
      const { prompt, maxUnits } = promptRequest(c, box);
      const size = new TextEncoder().encode(prompt).length;
      if (size > state.maxPromptBytes) throw new Error(`the prompt is ${size} bytes; at most ${state.maxPromptBytes} are allowed`);
      const metered = c.offer.unit === "thousand_tokens";
      const escrow = promptEscrow(c, maxUnits);
      if (state.account && state.account.balance_units < escrow)
        throw new Error("your balance is too low for this node's price: get welcome tokens first");
      const receipt = await send({
        type: "submit",
        node: c.node.owner,
        model_id: c.offer.model_id,
        prompt,
        params: "{}",
        // The price seen here is the most this task may cost.
        max_price: escrow,
        ...(metered ? { max_units: maxUnits ?? 256 } : {}),
      });
      const id = receipt.outcome.task;
      if (id === undefined) throw new Error("the ledger did not return a task id");
      follow(id);
      $("status-h").focus();
      await refreshAccount();
    });
  });
  $("status-h").tabIndex = -1;
  const chatForm = $<HTMLFormElement>("chat-form");
  const runChat = (f: () => Promise<void>) => async () => {
    clearChatError();
    try {
      await ready;
      await f();
    } catch (e) {
      showChatError(e);
    }
  };
  chatForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (chat.active) return;
    void runChat(ask)();
  });
  // Enter sends, Shift+Enter starts a new line.
  $("chat-message").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      chatForm.requestSubmit();
    }
  });
  $("chat-stop").addEventListener("click", () => void runChat(stop)());
  $("chat-new").addEventListener("click", () => {
    chat.messages = [];
    $("chat-log").replaceChildren();
    clearChatError();
    $("chat-message").focus();
  });
  $("chat-max").addEventListener("input", updateChatPrice);
}

async function main(): Promise<void> {
  wire();
  try {
    const info = await api.info();
    state.ledger = info.ledger;
    state.maxPromptBytes = info.limits.max_prompt_bytes;
    state.maxBodyBytes = info.limits.max_body_bytes;
    state.maxImageBytes = info.limits.max_image_bytes ?? state.maxImageBytes;
    // Only a gateway on Flow has the Flow routes (asking elsewhere would log a 404).
    if (info.network !== "embedded") state.flow = await flowConfig();
    if (state.flow) {
      state.fcl = await import("./flow");
      state.fcl.configure(state.flow);
      if (state.flow.discovery_wallet) state.wallet = await state.fcl.walletAddress();
    }
    markReady();
    state.models = new Map((await api.models()).map((m) => [m.id, m]));
    state.key = await loadKey();
    renderKey();
    if (state.key || state.wallet) await ensureAccount();
    renderKey();
    await refreshAll();
  } catch (e) {
    showError(e);
  }
  markReady();
  // Keep balances, scores and others' outputs current while the page is open.
  setInterval(() => {
    if (document.visibilityState === "visible") void refreshNodes().then(refreshAccount).then(refreshOutputs).catch(() => {});
  }, 5000);
}

void main();
