// The image view's rules, which must agree with flownet-infer's image checks and
// flownet-core's OCR output.

import { strict as assert } from "node:assert";
import { test } from "node:test";

import { imageProblem, imageType, isWav, readLabels, readReading, wavSeconds } from "../src/image.js";

const enc = (s: string) => new TextEncoder().encode(s).buffer as ArrayBuffer;

test("only PNG and JPEG files within the gateway's limit are sent", () => {
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]);
  const jpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1]);
  assert.equal(imageType(png), "image/png");
  assert.equal(imageType(jpeg), "image/jpeg");
  assert.equal(imageType(new TextEncoder().encode("GIF89a")), null);
  assert.equal(imageProblem(png, 100), null);
  assert.match(imageProblem(png, 5) ?? "", /at most 5/);
  assert.match(imageProblem(new Uint8Array(), 100) ?? "", /empty/);
  assert.match(imageProblem(new TextEncoder().encode("hello world"), 100) ?? "", /not a PNG or JPEG/);
});

test("an OCR output is read only when its text is its lines", () => {
  const box = [[0, 0], [9, 0], [9, 5], [0, 5]];
  const good = { model: "m", width: 10, height: 10, text: "a b\nc", lines: [{ text: "a b", score: 0.9, box }, { text: "c", score: 0.8, box }] };
  assert.equal(readReading(enc(JSON.stringify(good)))?.lines.length, 2);
  assert.equal(readReading(enc(JSON.stringify({ ...good, text: "other" }))), null);
  assert.equal(readReading(enc("not json")), null);
  assert.equal(readReading(enc(JSON.stringify({ labels: [] }))), null);
});

test("classifier labels are read from their JSON", () => {
  const labels = readLabels(enc(JSON.stringify({ model: "m", labels: [{ index: 3, label: "cat", score: 0.7 }] })));
  assert.deepEqual(labels, [{ index: 3, label: "cat", score: 0.7 }]);
  assert.equal(readLabels(enc(JSON.stringify({ text: "x" }))), null);
});

test("a WAV file's length comes from its header", () => {
  // flownet-infer's speech::wav: 16-bit mono at 22,050 Hz, one second of samples.
  const samples = 22050;
  const bytes = new Uint8Array(44 + samples * 2);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode("RIFF"), 0);
  view.setUint32(4, 36 + samples * 2, true);
  bytes.set(new TextEncoder().encode("WAVEfmt "), 8);
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, 22050, true);
  view.setUint32(28, 44100, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  bytes.set(new TextEncoder().encode("data"), 36);
  view.setUint32(40, samples * 2, true);
  assert.equal(isWav(bytes), true);
  assert.equal(wavSeconds(bytes), 1);
  assert.equal(isWav(new TextEncoder().encode("RIFF....AVI LIST")), false);
});
