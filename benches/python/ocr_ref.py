#!/usr/bin/env python3
"""The reference pipeline for FlowNet's OCR models, in Python, and the test images.

onnxruntime + numpy (+ scipy for connected regions, Pillow for decoding and
resizing), from the model's manifest, step for step what the Rust pipeline
(flownet-infer/src/ocr.rs) does: the image's shorter side scaled to 736 (longer
side at most 2048, each a multiple of 32), BGR in [-1, 1]; the detector's map
thresholded at 0.3, dilated 2x2, split into 8-connected regions scored by their
box's mean; each box grown by area x 1.6 / perimeter; boxes of one line that
touch merged; each cropped with a margin (15% of its height above and below, 5% to
the sides); the angle
classifier's 180-degree turns; the recogniser in batches of 6 at height 48;
CTC greedy decoding; boxes under 0.5 confidence dropped; lines gathered top to
bottom, left to right.

    # read an image, as the node's JSON output
    .venv/bin/python benches/python/ocr_ref.py --read image.png
    # render test text: one line per --line "SIZE:TEXT", black on white, to a PNG
    .venv/bin/python benches/python/ocr_ref.py --render out.png --line "40:Hello world" --line "24:small text"
    # images per second over the benchmark images, one JSON line
    .venv/bin/python benches/python/ocr_ref.py --bench --threads 1 --iters 10
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

REPO = Path(__file__).resolve().parents[2]
MODEL = "pp-ocrv4"

DET_MIN_SIDE, DET_MAX_SIDE = 736, 2048
BIN_THRESHOLD, BOX_THRESHOLD, UNCLIP_RATIO, MIN_SIZE = 0.3, 0.5, 1.6, 3
TEXT_THRESHOLD, CLS_THRESHOLD, BATCH = 0.5, 0.9, 6
# Each crop reaches this fraction of the box's height beyond it: above and below, and
# to the left and right.
CROP_PAD_Y, CROP_PAD_X = 0.15, 0.05
# Two boxes are one line's if they overlap vertically by this fraction of the lower one
# and lie at most this fraction of the taller one's height apart.
MERGE_OVERLAP, MERGE_GAP = 0.5, 0.2
REC_HEIGHT, REC_MIN_WIDTH, CLS_HEIGHT, CLS_WIDTH = 48, 320, 48, 192

# The benchmark's images: lines of everyday text at three sizes, rendered by
# render() (the Rust side renders the same through this script).
BENCH_PAGES = [
    [(36, "Invoice 2041 due on 12 March"), (24, "Total amount: 1,250.00 EUR"), (24, "Pay to account 0042 7781")],
    [(48, "FlowNet inference"), (28, "Decentralized model marketplace"), (20, "Pay per task with escrow")],
    [(30, "The quick brown fox jumps"), (30, "over the lazy dog 0123456789")],
]


def render(lines: list[tuple[int, str]], margin: int = 24, gap: int = 18) -> Image.Image:
    """Black text on white, one line per (size, text), with Pillow's own font."""
    fonts = [ImageFont.load_default(size) for size, _ in lines]
    boxes = [f.getbbox(t) for f, (_, t) in zip(fonts, lines)]
    width = max(b[2] for b in boxes) + 2 * margin
    height = sum(b[3] for b in boxes) + gap * (len(lines) - 1) + 2 * margin
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    y = margin
    for font, (_, text), box in zip(fonts, lines, boxes):
        draw.text((margin, y), text, fill="black", font=font)
        y += box[3] + gap
    return image


def merge_touching(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Boxes of one line that overlap or nearly touch (a word the detector split) become one."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                ha, hb = a[3] - a[1], b[3] - b[1]
                overlap_y = min(a[3], b[3]) - max(a[1], b[1])
                gap_x = max(a[0], b[0]) - min(a[2], b[2])
                if overlap_y >= MERGE_OVERLAP * min(ha, hb) and gap_x <= MERGE_GAP * max(ha, hb):
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def det_size(w: int, h: int) -> tuple[int, int]:
    ratio = DET_MIN_SIDE / min(w, h) if min(w, h) < DET_MIN_SIDE else 1.0
    ratio = min(ratio, DET_MAX_SIDE / max(w, h))
    side = lambda v: max(int(round(math.floor(v * ratio) / 32.0)) * 32, 32)  # noqa: E731
    return side(w), side(h)


def to_bgr(image: Image.Image) -> np.ndarray:
    """CHW, BGR, scaled to [-1, 1]."""
    rgb = np.asarray(image, dtype=np.float32)
    return (rgb[:, :, ::-1].transpose(2, 0, 1) / 127.5 - 1.0).astype(np.float32)


def line_batch(crops: list[Image.Image], height: int, width: int) -> np.ndarray:
    out = np.zeros((len(crops), 3, height, width), dtype=np.float32)
    for n, crop in enumerate(crops):
        w = min(max(int(math.ceil(height * crop.width / crop.height)), 1), width)
        out[n, :, :, :w] = to_bgr(crop.resize((w, height), Image.BILINEAR))
    return out


class Reference:
    def __init__(self, model_dir: Path, threads: int = 1):
        manifest = json.loads((model_dir / "manifest.json").read_text())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL

        def session(name: str) -> ort.InferenceSession:
            return ort.InferenceSession(str(model_dir / name), sess_options=opts, providers=["CPUExecutionProvider"])

        self.det = session(manifest["weights"])
        self.rec = session(manifest["files"]["rec"])
        self.cls = session(manifest["files"]["cls"]) if "cls" in manifest["files"] else None
        chars = self.rec.get_modelmeta().custom_metadata_map["character"].splitlines()
        self.charset = [""] + chars + [" "]

    def boxes(self, image: Image.Image) -> list[tuple[int, int, int, int]]:
        w, h = image.size
        dw, dh = det_size(w, h)
        x = to_bgr(image.resize((dw, dh), Image.BILINEAR))[None]
        prob = self.det.run(None, {self.det.get_inputs()[0].name: x})[0][0, 0]
        on = prob > BIN_THRESHOLD
        mask = on.copy()
        mask[:, 1:] |= on[:, :-1]
        mask[1:, :] |= on[:-1, :]
        mask[1:, 1:] |= on[:-1, :-1]
        labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
        found = []
        for index, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None:
                continue
            ys, xs = sl
            y0, y1, x0, x1 = ys.start, ys.stop - 1, xs.start, xs.stop - 1
            if x1 - x0 + 1 < MIN_SIZE or y1 - y0 + 1 < MIN_SIZE:
                continue
            score = float(prob[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64).mean())
            if score >= BOX_THRESHOLD:
                found.append((int((labels[sl] == index).sum()), (x0, y0, x1, y1)))
        found.sort(key=lambda f: -f[0])
        sx, sy = w / prob.shape[1], h / prob.shape[0]
        out = []
        for _, (x0, y0, x1, y1) in found[:1000]:
            bw, bh = x1 - x0 + 1, y1 - y0 + 1
            d = bw * bh * UNCLIP_RATIO / (2 * (bw + bh))
            r = (
                int(min(max(round((x0 - d) * sx), 0), w - 1)),
                int(min(max(round((y0 - d) * sy), 0), h - 1)),
                int(min(max(round((x1 + 1 + d) * sx), 0), w - 1)),
                int(min(max(round((y1 + 1 + d) * sy), 0), h - 1)),
            )
            if r[2] - r[0] > 3 and r[3] - r[1] > 3:
                out.append(r)
        return out

    def read(self, image: Image.Image) -> dict:
        image = image.convert("RGB")
        boxes = merge_touching(self.boxes(image))
        crops = []
        for x0, y0, x1, y1 in boxes:
            h = y1 - y0
            py, px = round(CROP_PAD_Y * h), round(CROP_PAD_X * h)
            crop = image.crop((max(x0 - px, 0), max(y0 - py, 0), min(x1 + px, image.width), min(y1 + py, image.height)))
            if crop.height >= 1.5 * crop.width:
                crop = crop.transpose(Image.ROTATE_90)
            crops.append(crop)
        order = sorted(range(len(crops)), key=lambda i: crops[i].width / crops[i].height)
        if self.cls is not None:
            for b in range(0, len(order), BATCH):
                chunk = order[b : b + BATCH]
                x = line_batch([crops[i] for i in chunk], CLS_HEIGHT, CLS_WIDTH)
                probs = self.cls.run(None, {self.cls.get_inputs()[0].name: x})[0]
                for k, i in enumerate(chunk):
                    if probs[k, 1] > probs[k, 0] and probs[k, 1] >= CLS_THRESHOLD:
                        crops[i] = crops[i].transpose(Image.ROTATE_180)
        reads = [("", 0.0)] * len(crops)
        for b in range(0, len(order), BATCH):
            chunk = order[b : b + BATCH]
            widest = max([REC_MIN_WIDTH / REC_HEIGHT] + [crops[i].width / crops[i].height for i in chunk])
            x = line_batch([crops[i] for i in chunk], REC_HEIGHT, max(int(REC_HEIGHT * widest), 1))
            probs = self.rec.run(None, {self.rec.get_inputs()[0].name: x})[0]
            for k, i in enumerate(chunk):
                best, p = probs[k].argmax(axis=1), probs[k].max(axis=1)
                keep = (best != 0) & np.concatenate([[True], best[1:] != best[:-1]])
                text = "".join(self.charset[j] for j in best[keep])
                score = float(p[keep].astype(np.float64).mean()) if keep.any() else 0.0
                reads[i] = (text, score)
        words = [
            (r, t.strip(), s) for r, (t, s) in zip(boxes, reads) if s >= TEXT_THRESHOLD and t.strip()
        ]
        words.sort(key=lambda w: (w[0][1] + w[0][3], w[0][0]))
        lines: list[list] = []
        for word in words:
            r = word[0]
            mid = (r[1] + r[3]) // 2
            for line in lines:
                e = line[0]
                if e[1] <= mid <= e[3] or r[1] <= (e[1] + e[3]) // 2 <= r[3]:
                    line[0] = (min(e[0], r[0]), min(e[1], r[1]), max(e[2], r[2]), max(e[3], r[3]))
                    line[1].append(word)
                    break
            else:
                lines.append([r, [word]])
        lines.sort(key=lambda line: (line[0][1] + line[0][3], line[0][0]))
        out = []
        for (x0, y0, x1, y1), members in lines:
            members.sort(key=lambda w: w[0][0])
            chars = sum(len(t) for _, t, _ in members)
            out.append(
                {
                    "text": " ".join(t for _, t, _ in members),
                    "score": sum(s * len(t) for _, t, s in members) / max(chars, 1),
                    "box": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
                }
            )
        return {
            "model": MODEL,
            "width": image.width,
            "height": image.height,
            "text": "\n".join(line["text"] for line in out),
            "lines": out,
        }


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--read", type=Path, help="an image to read")
    parser.add_argument("--render", type=Path, help="write a test image here")
    parser.add_argument("--line", action="append", default=[], help="SIZE:TEXT, for --render")
    parser.add_argument("--bench-pages", type=Path, help="write the benchmark images here (a directory)")
    parser.add_argument("--bench", action="store_true", help="time the benchmark images")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument(
        "--models", type=Path, default=Path(os.environ.get("FLOWNET_MODELS", REPO / "models"))
    )
    args = parser.parse_args()
    if args.render is not None:
        lines = []
        for spec in args.line:
            size, _, text = spec.partition(":")
            lines.append((int(size), text))
        if not lines:
            parser.error("--render needs at least one --line SIZE:TEXT")
        args.render.write_bytes(png_bytes(render(lines)))
        return 0
    if args.bench_pages is not None:
        args.bench_pages.mkdir(parents=True, exist_ok=True)
        for n, page in enumerate(BENCH_PAGES):
            (args.bench_pages / f"page{n}.png").write_bytes(png_bytes(render(page)))
        return 0
    ref = Reference(args.models / MODEL, threads=args.threads)
    if args.read is not None:
        print(json.dumps(ref.read(Image.open(args.read)), ensure_ascii=False))
        return 0
    if args.bench:
        # PNG bytes, decoded in each timed run as the Rust side decodes its input.
        pages = [png_bytes(render(p)) for p in BENCH_PAGES]
        for page in pages:
            ref.read(Image.open(io.BytesIO(page)))
        times = []
        for _ in range(args.iters):
            start = time.perf_counter()
            for page in pages:
                ref.read(Image.open(io.BytesIO(page)))
            times.append(time.perf_counter() - start)
        p50 = statistics.median(times)
        print(
            json.dumps(
                {
                    "model": MODEL,
                    "threads": args.threads,
                    "iters": args.iters,
                    "images": len(pages),
                    "images_per_s": round(len(pages) / p50, 2),
                }
            )
        )
        return 0
    parser.error("give --read IMAGE, --render OUT --line SIZE:TEXT, --bench-pages DIR or --bench")
    return 2


if __name__ == "__main__":
    sys.exit(main())
