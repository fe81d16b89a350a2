// The chat view's parts that touch no page: the conversation as a text-generation
// model reads it, what an answer escrows, and the reader of the gateway's token stream
// (GET /api/tasks/{id}/stream: OpenAI's chat.completion.chunk events, then
// `data: [DONE]`).

export interface Message {
  role: "system" | "user" | "assistant";
  content: string;
}

/** The prompt of a chat task: the whole conversation, as the model's prompt mapping
 * reads it ({"messages": [{"role", "content"}]}). */
export function conversationPrompt(messages: Message[]): string {
  return JSON.stringify({ messages: messages.map((m) => ({ role: m.role, content: m.content })) });
}

/** What `maxUnits` tokens escrow at `unitPrice` (units per 1,000 tokens), rounded down
 * as flownet-core's `metered_cost` does. */
export function meteredCost(unitPrice: number, maxUnits: number): number {
  return Number((BigInt(unitPrice) * BigInt(maxUnits)) / 1000n);
}

/** The task fields the last chunk carries. */
export interface StreamFields {
  task_id: number;
  sha256: string | null;
  price: string;
  cost?: string;
  refunded?: string;
  units?: number;
}

export interface StreamEnd {
  fields?: StreamFields;
  finishReason?: string;
  error?: { message: string; code?: string };
  done: boolean;
}

/** Reads a chunk stream, calling `onText` with each piece of text as it arrives. */
export async function readChatStream(
  body: ReadableStream<Uint8Array>,
  onText: (text: string) => void,
): Promise<StreamEnd> {
  const end: StreamEnd = { done: false };
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const handle = (event: string) => {
    for (const line of event.split("\n")) {
      if (!line.startsWith("data: ")) continue;
      const data = line.slice(6);
      if (data === "[DONE]") {
        end.done = true;
        continue;
      }
      const chunk = JSON.parse(data) as {
        error?: { message: string; code?: string };
        choices?: { delta?: { content?: string }; finish_reason?: string | null }[];
        flownet?: StreamFields;
      };
      if (chunk.error) end.error = chunk.error;
      const choice = chunk.choices?.[0];
      if (choice?.delta?.content) onText(choice.delta.content);
      if (choice?.finish_reason) end.finishReason = choice.finish_reason;
      if (chunk.flownet) end.fields = chunk.flownet;
    }
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut: number;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      handle(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
    }
  }
  buffer += decoder.decode();
  if (buffer.trim()) handle(buffer);
  return end;
}

/** The raster image types the page shows from a `blob:` URL. */
const IMAGE_MIMES = new Set(["image/png", "image/jpeg", "image/webp", "image/gif"]);

/**
 * The type an output is shown as: only the output MIME the model's manifest declares,
 * and only a raster image type, whatever the node wrote in the task's result (a node
 * could say `image/svg+xml`, which is active content).
 */
export function displayMime(declared: string | null | undefined): string | null {
  return declared && IMAGE_MIMES.has(declared) ? declared : null;
}
