// The image view's page-free parts: which kinds read an image, what an image file
// must be before it is paid for (flownet-infer's `check_image`: a PNG or JPEG), and
// the readers of the outputs of image models (OCR, classification).

/** Model kinds whose task reads an input image (flownet-core's `TaskKind::takes_image`). */
export const IMAGE_KINDS = new Set(["image-classification", "ocr"]);

/** The image's MIME type from its first bytes (PNG or JPEG), else null. */
export function imageType(bytes: Uint8Array): "image/png" | "image/jpeg" | null {
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length >= 8 && png.every((b, i) => bytes[i] === b)) return "image/png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "image/jpeg";
  return null;
}

/** Why `bytes` cannot be sent as a model's input image, or null when it can. */
export function imageProblem(bytes: Uint8Array, maxBytes: number): string | null {
  if (bytes.length === 0) return "the file is empty";
  if (!imageType(bytes)) return "the file is not a PNG or JPEG image";
  if (bytes.length > maxBytes) return `the image is ${bytes.length} bytes; this gateway holds at most ${maxBytes}`;
  return null;
}

/** One line an OCR model read (flownet-core's `ocr::Line`). */
export interface OcrLine {
  text: string;
  score: number;
  box: [number, number][];
}

/** An OCR output (flownet-core's `ocr::Reading`). */
export interface Reading {
  model: string;
  width: number;
  height: number;
  text: string;
  lines: OcrLine[];
}

/** The OCR output in `bytes`, or null if it is not one (its text must be its lines). */
export function readReading(bytes: ArrayBuffer): Reading | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as Partial<Reading>;
    if (typeof v.text !== "string" || !Array.isArray(v.lines)) return null;
    const lines = v.lines as OcrLine[];
    if (lines.some((l) => typeof l?.text !== "string" || typeof l?.score !== "number")) return null;
    if (lines.map((l) => l.text).join("\n") !== v.text) return null;
    return v as Reading;
  } catch {
    return null;
  }
}

/** One class an image classifier predicted. */
export interface Prediction {
  index: number;
  label: string;
  score: number;
}

/** An image classifier's labels in `bytes` (`{"model", "labels": [...]}`), or null. */
export function readLabels(bytes: ArrayBuffer): Prediction[] | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as { labels?: unknown };
    if (!Array.isArray(v.labels)) return null;
    const labels = v.labels as Prediction[];
    if (labels.some((l) => typeof l?.label !== "string" || typeof l?.score !== "number")) return null;
    return labels;
  } catch {
    return null;
  }
}

/** Whether `bytes` is a WAV file (RIFF … WAVE). */
export function isWav(bytes: Uint8Array): boolean {
  const text = (a: number, b: number) => String.fromCharCode(...bytes.subarray(a, b));
  return bytes.length >= 44 && text(0, 4) === "RIFF" && text(8, 12) === "WAVE";
}

/** A PCM WAV file's length in seconds, from its header (the first `fmt ` and `data`
 * chunks). */
export function wavSeconds(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let byteRate = 0;
  for (let at = 12; at + 8 <= bytes.length; ) {
    const id = String.fromCharCode(...bytes.subarray(at, at + 4));
    const size = view.getUint32(at + 4, true);
    if (id === "fmt " && at + 16 <= bytes.length) byteRate = view.getUint32(at + 16, true);
    if (id === "data") return byteRate > 0 ? Math.min(size, bytes.length - at - 8) / byteRate : 0;
    at += 8 + size + (size % 2);
  }
  return 0;
}
