// The embedding view's page-free parts: the texts a prompt box holds, the prompt that
// carries them (flownet-core's `embedding::prompt_for`), the escrow bound
// (`embedding::max_units`) and the reader of an embedding output.

/** Most texts one embedding task takes (flownet-core's `embedding::MAX_INPUTS`). */
export const MAX_TEXTS = 256;
/** Tokens a model adds to each text beyond it, at most (`SPECIAL_TOKENS_BOUND`). */
export const SPECIAL_TOKENS = 2;

/** The texts of the prompt box: one per non-blank line, as written. */
export function embeddingTexts(box: string): string[] {
  return box.split(/\r?\n/).filter((line) => line.trim() !== "");
}

/** The prompt standing for `texts`: the text itself when there is one (and it is not
 * itself an `{"input": ...}` object), else `{"input": [...]}`, which the node reads back. */
export function embeddingPrompt(texts: string[]): string {
  if (texts.length === 0) throw new Error("write a text to embed");
  if (texts.length > MAX_TEXTS) throw new Error(`${texts.length} texts: one task takes at most ${MAX_TEXTS}`);
  if (texts.length === 1 && !looksLikeInput(texts[0])) return texts[0];
  return JSON.stringify({ input: texts });
}

function looksLikeInput(text: string): boolean {
  if (!text.trimStart().startsWith("{")) return false;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) && "input" in v;
  } catch {
    return false;
  }
}

/** The most tokens `texts` can be: each text's UTF-8 length plus the special tokens,
 * what the page escrows for (the tokens not read come back). */
export function embeddingMaxUnits(texts: string[]): number {
  const enc = new TextEncoder();
  return Math.max(1, texts.reduce((sum, t) => sum + enc.encode(t).length + SPECIAL_TOKENS, 0));
}

export interface Embeddings {
  model: string;
  dimensions: number;
  embeddings: number[][];
  tokens: number[];
  truncated: boolean[];
  usage: { prompt_tokens: number; total_tokens: number };
}

/** An embedding output's JSON, or null when the bytes are something else. */
export function readEmbeddings(bytes: ArrayBuffer): Embeddings | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as Partial<Embeddings>;
    if (!Array.isArray(v.embeddings) || !Array.isArray(v.tokens) || typeof v.dimensions !== "number") return null;
    if (v.embeddings.some((e) => !Array.isArray(e) || e.length !== v.dimensions)) return null;
    return v as Embeddings;
  } catch {
    return null;
  }
}

/** The cosine similarity of two vectors (0 when either is all zeros). */
export function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}
