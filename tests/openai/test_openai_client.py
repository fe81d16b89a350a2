"""The `openai` Python package, which nobody here wrote, against the gateway.

A marketplace is started on loopback (a node serving the real models inside the
gateway's process, API keys made with `flownet web keys create`), and the client is
pointed at it by its base URL only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import openai
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("FLOWNET_BIN", str(REPO / "target" / "debug" / "flownet"))
MODELS = os.environ.get("FLOWNET_MODELS", str(REPO / "models"))
MODEL = "terrain-diffusion-128"
CHAT = "smollm2-135m-instruct"
EMBED = "all-minilm-l6-v2"
SPEECH = "piper-joe-medium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Market:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="flownet-openai-")
        self.proc: subprocess.Popen[bytes] | None = None
        # Every client made for the tests, closed with the market (their pooled
        # keep-alive sockets would otherwise be left to the garbage collector).
        self.clients: list[openai.OpenAI] = []

    def flownet(self, key: str, *args: str) -> dict:
        out = subprocess.run(
            [BIN, "--data-dir", self.dir, "--key", key, "--models-dir", MODELS, "--json", *args],
            check=True,
            capture_output=True,
        )
        return json.loads(out.stdout)

    def start(self) -> str:
        node_port, port = free_port(), free_port()
        self.flownet("alpine", "init")
        self.flownet(
            "alpine", "node", "register", "--name", "Alpine node",
            "--endpoint", f"http://127.0.0.1:{node_port}", "--model", f"{MODEL}=0.5",
            "--model", "mobilenet-v2=0.1", "--model", f"{CHAT}=0.2", "--model", f"{EMBED}=0.02", "--model", f"{SPEECH}=0.05",
        )
        self.keys = {
            "rich": self.flownet("alpine", "web", "keys", "create", "--label", "rich", "--max-price", "1", "--faucet", "--rate", "600/60")["key"],
            "poor": self.flownet("alpine", "web", "keys", "create", "--label", "poor", "--max-price", "1")["key"],
            "chat": self.flownet("alpine", "web", "keys", "create", "--label", "chat", "--max-price", "1", "--faucet", "--rate", "600/60")["key"],
            "stingy": self.flownet("alpine", "web", "keys", "create", "--label", "stingy", "--max-price", "0.1", "--faucet")["key"],
        }
        retry = self.flownet("alpine", "web", "keys", "create", "--label", "retry", "--max-price", "1", "--faucet", "--rate", "600/60")
        self.keys["retry"] = retry["key"]
        self.retry_address = retry["address"]
        self.proc = subprocess.Popen(
            [BIN, "--data-dir", self.dir, "--key", "alpine", "--models-dir", MODELS,
             "web", "--listen", f"127.0.0.1:{port}", "--node", "--threads", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode())
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self.url
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the gateway did not start")

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as r:
            return r.read()


@pytest.fixture(scope="module")
def market():
    m = Market()
    try:
        m.start()
        yield m
    finally:
        m.stop()


def client(market: Market, key: str) -> openai.OpenAI:
    # No retries: an error must surface as the exception the client maps it to.
    c = openai.OpenAI(api_key=key, base_url=f"{market.url}/v1", max_retries=0, timeout=120)
    market.clients.append(c)
    return c


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_models_lists_what_the_nodes_serve(market):
    ids = {m.id for m in client(market, market.keys["rich"]).models.list()}
    assert ids == {MODEL, "mobilenet-v2", CHAT, EMBED, SPEECH}
    assert client(market, market.keys["rich"]).models.retrieve(MODEL).owned_by == "flownet"


def test_generates_an_image_as_b64_json(market):
    resp = client(market, market.keys["rich"]).images.generate(
        model=MODEL, prompt="rolling green hills", size="128x128", response_format="b64_json"
    )
    assert len(resp.data) == 1
    image = resp.data[0]
    data = base64.b64decode(image.b64_json)
    assert png_size(data) == (128, 128)
    sha = hashlib.sha256(data).hexdigest()
    # The gateway's extra fields tie the image to the ledger.
    assert image.sha256 == sha
    task = json.loads(market.get(f"/api/tasks/{image.task_id}"))["task"]
    assert task["status"] == "fulfilled"
    assert task["result"]["sha256"] == sha
    assert task["nft"] == image.nft_id
    assert task["prompt"] == "rolling green hills"


def test_generates_images_as_urls_and_several_differ(market):
    resp = client(market, market.keys["rich"]).images.generate(model=MODEL, prompt="steep cliffs", n=2)
    assert len(resp.data) == 2
    shas = []
    for image in resp.data:
        with urllib.request.urlopen(image.url, timeout=30) as r:
            data = r.read()
        assert r.headers["content-type"] == "image/png"
        assert hashlib.sha256(data).hexdigest() == image.sha256
        shas.append(image.sha256)
    assert shas[0] != shas[1]


def test_a_bad_key_is_an_authentication_error(market):
    with pytest.raises(openai.AuthenticationError) as e:
        client(market, "fnk_" + "0" * 64).images.generate(model=MODEL, prompt="hills")
    assert e.value.code == "invalid_api_key"


def test_no_funds_is_insufficient_quota(market):
    with pytest.raises(openai.RateLimitError) as e:
        client(market, market.keys["poor"]).images.generate(model=MODEL, prompt="hills")
    assert e.value.code == "insufficient_quota"
    assert "insufficient funds" in e.value.message


def test_an_unknown_model_is_not_found(market):
    with pytest.raises(openai.NotFoundError) as e:
        client(market, market.keys["rich"]).images.generate(model="dall-e-3", prompt="hills")
    assert e.value.code == "model_not_found"


def test_requests_the_model_cannot_serve_are_bad_requests(market):
    c = client(market, market.keys["rich"])
    with pytest.raises(openai.BadRequestError) as e:
        c.images.generate(model=MODEL, prompt="hills", size="1024x1024")
    assert e.value.code == "invalid_size" and "128x128" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        c.images.generate(model="mobilenet-v2", prompt="hills")
    assert e.value.code == "wrong_model_kind"
    with pytest.raises(openai.BadRequestError) as e:
        c.images.generate(model=MODEL, prompt="x" * 5000)
    assert e.value.code == "prompt_too_large"
    with pytest.raises(openai.BadRequestError) as e:
        client(market, market.keys["stingy"]).images.generate(model=MODEL, prompt="hills")
    assert e.value.code == "price_above_max"


def test_kinds_nobody_serves_are_not_found(market):
    c = client(market, market.keys["rich"])
    with pytest.raises(openai.NotFoundError):
        c.embeddings.create(model="text-embedding-3-small", input="hello")
    with pytest.raises(openai.NotFoundError):
        c.completions.create(model="gpt-3.5-turbo-instruct", prompt="hello")
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])


SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar.",
    "The stock market fell sharply today.",
]


def test_embeddings_of_a_list_in_one_task_match_the_reference(market):
    # This venv has no numpy: plain Python. The vectors match the Python reference
    # pipeline to 1e-4 in flownet-infer's tests; here the client's view is checked.
    c = client(market, market.keys["rich"])
    models = {m.id: m for m in c.models.list().data}
    assert EMBED in models
    # The SDK asks for base64 by default and decodes it to floats.
    r = c.embeddings.create(model=EMBED, input=SENTENCES)
    assert [d.index for d in r.data] == [0, 1, 2]
    ours = [d.embedding for d in r.data]
    assert all(len(v) == 384 for v in ours)
    assert all(abs(sum(x * x for x in v) - 1.0) < 1e-4 for v in ours)
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert dot(ours[0], ours[1]) > dot(ours[0], ours[2]) + 0.3
    # Paid per 1,000 tokens read: the usage is the node's count, the rest came back.
    assert r.usage.prompt_tokens == r.usage.total_tokens > 3
    task = task_of(market, r.model_extra["flownet"]["task_id"])
    assert task["status"] == "fulfilled"
    assert task["units"] == r.usage.prompt_tokens
    assert float(task["refunded"]) > 0
    # The gateway recounted the tokens with the model's own tokenizer.
    assert r.model_extra["flownet"]["units_check"]["result"] == "matches", r.model_extra["flownet"]
    # One string, as floats: the same vector.
    one = c.embeddings.create(model=EMBED, input=SENTENCES[0], encoding_format="float")
    assert len(one.data) == 1
    assert max(abs(x - y) for x, y in zip(one.data[0].embedding, ours[0])) < 1e-5


def test_bad_embedding_requests_are_refused_before_payment(market):
    c = client(market, market.keys["rich"])
    for bad in ([], [""], ["ok", 3], [[1, 2, 3]]):
        with pytest.raises(openai.BadRequestError) as e:
            c.embeddings.create(model=EMBED, input=bad)
        assert e.value.code == "invalid_input", bad
    with pytest.raises(openai.BadRequestError) as e:
        c.embeddings.create(model=CHAT, input="hello")
    assert e.value.code == "wrong_model_kind"


def test_speech_is_a_wav_file_and_pcm_its_samples(market):
    c = client(market, market.keys["rich"])
    text = "Hello from FlowNet. This sentence was spoken by a node."
    r = c.audio.speech.create(model=SPEECH, voice="alloy", input=text, response_format="wav")
    wav = r.read()
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    channels, rate = struct.unpack("<HI", wav[22:28])
    assert (channels, rate) == (1, 22050)
    seconds = (len(wav) - 44) / 2 / rate
    assert 2.0 < seconds < 8.0, seconds
    # The output is the task's, by its hash on the ledger.
    task_id = int(r.response.headers["x-flownet-task-id"])
    task = task_of(market, task_id)
    assert task["status"] == "fulfilled" and task["model_id"] == SPEECH
    assert task["result"]["sha256"] == hashlib.sha256(wav).hexdigest() == r.response.headers["x-flownet-sha256"]
    # pcm: the samples alone, and faster speech is shorter.
    pcm = c.audio.speech.create(model=SPEECH, voice="joe", input=text, response_format="pcm", speed=1.5).read()
    assert pcm[:4] != b"RIFF" and len(pcm) % 2 == 0
    assert len(pcm) < (len(wav) - 44) * 0.85


def test_bad_speech_requests_are_refused_before_payment(market):
    c = client(market, market.keys["rich"])
    with pytest.raises(openai.BadRequestError) as e:
        c.audio.speech.create(model=SPEECH, voice="alloy", input="  ")
    assert e.value.code == "invalid_input"
    with pytest.raises(openai.BadRequestError) as e:
        c.audio.speech.create(model=SPEECH, voice="alloy", input="hello", response_format="mp3")
    assert e.value.code == "unsupported_response_format"
    with pytest.raises(openai.BadRequestError) as e:
        c.audio.speech.create(model=SPEECH, voice="alloy", input="hello", speed=9)
    assert e.value.code == "invalid_speed"
    with pytest.raises(openai.BadRequestError) as e:
        c.audio.speech.create(model=EMBED, voice="alloy", input="hello")
    assert e.value.code == "wrong_model_kind"


QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def task_of(market: Market, task_id: int) -> dict:
    return json.loads(market.get(f"/api/tasks/{task_id}"))["task"]


def delivered_text(market: Market, task: dict) -> str:
    sha = task["result"]["sha256"]
    body = market.get(f"/api/blobs/{sha}?task={task['id']}")
    assert hashlib.sha256(body).hexdigest() == sha
    return json.loads(body)["text"]


def test_the_chat_model_is_listed_with_its_kind_and_price_per_token(market):
    m = client(market, market.keys["chat"]).models.retrieve(CHAT)
    extra = m.model_extra or {}
    assert extra["kind"] == "text-generation"
    assert extra["pricing"]["unit"] == "thousand_tokens"
    assert float(extra["pricing"]["price"]) == pytest.approx(0.2)


def test_a_chat_answer_is_paid_per_token_and_matches_the_ledger(market):
    r = client(market, market.keys["chat"]).chat.completions.create(
        model=CHAT, messages=QUESTION, max_tokens=24, temperature=0, seed=7
    )
    answer = r.choices[0].message.content
    assert answer and r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 24 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    fields = r.model_extra["flownet"]
    task = task_of(market, fields["task_id"])
    assert task["status"] == "fulfilled"
    # Paid for the tokens written, the rest of the escrow of 24 tokens refunded.
    assert task["units"] == r.usage.completion_tokens == fields["units"]
    # The gateway holds the model too: it recounted the answer with the model's tokenizer.
    assert fields["units_check"] == {"result": "matches", "counted": task["units"], "by": "tokenizer"}
    assert task["max_units"] == 24
    assert delivered_text(market, task) == answer
    assert float(fields["cost"]) + float(fields["refunded"]) == pytest.approx(float(fields["price"]))
    if r.usage.completion_tokens < 24:
        assert float(fields["refunded"]) > 0


def test_a_streamed_chat_is_the_delivered_answer_with_usage_last(market):
    stream = client(market, market.keys["chat"]).chat.completions.create(
        model=CHAT,
        messages=QUESTION,
        max_tokens=24,
        temperature=0,
        seed=7,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage, task_id = [], None, None, None
    for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            if delta.content:
                pieces.append(delta.content)
            if chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
                task_id = chunk.model_extra["flownet"]["task_id"]
        else:
            assert usage is None, "one usage chunk, after the choices"
            usage = chunk.usage
    assert finish in ("stop", "length")
    assert usage is not None and 0 < usage.completion_tokens <= 24
    text = "".join(pieces)
    task = task_of(market, task_id)
    assert task["units"] == usage.completion_tokens
    assert delivered_text(market, task) == text
    # The same seed, params and model give the same answer, streamed or not.
    again = client(market, market.keys["chat"]).chat.completions.create(
        model=CHAT, messages=QUESTION, max_tokens=24, temperature=0, seed=7
    )
    assert again.choices[0].message.content == text


def test_a_completion_is_text_generation_too(market):
    r = client(market, market.keys["chat"]).completions.create(
        model=CHAT, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert r.choices[0].text and r.choices[0].finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 8


def test_bad_chat_requests_are_refused_before_payment(market):
    c = client(market, market.keys["chat"])
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model=CHAT, messages=[])
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model=CHAT, messages=[{"role": "wizard", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model=CHAT, messages=QUESTION, max_tokens=0)
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model=CHAT, messages=QUESTION, max_tokens=10**7)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=CHAT, messages=QUESTION, n=2)
    assert e.value.param or e.value.code


def test_the_sdks_retries_of_a_timed_out_request_pay_once(market):
    # The SDK's own retries (x-stainless-retry-count) of a call that times out every
    # time: the gateway runs the first try to the end and the retries join it.
    impatient = openai.OpenAI(api_key=market.keys["retry"], base_url=f"{market.url}/v1", max_retries=2, timeout=0.05)
    market.clients.append(impatient)
    # (A retry that arrives after the first run ended is answered at once from what it
    # kept, so the call may also succeed; either way it is paid once.)
    try:
        impatient.images.generate(model=MODEL, prompt="a patient glacier", size="128x128", response_format="b64_json")
    except openai.APITimeoutError:
        pass
    tasks_of = lambda: json.loads(market.get(f"/api/tasks?requester={market.retry_address}"))["tasks"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(t["status"] == "fulfilled" for t in tasks_of()):
        time.sleep(0.2)
    tasks = tasks_of()
    assert len(tasks) == 1, f"the retries paid again: {tasks}"
    assert tasks[0]["status"] == "fulfilled"
    # The same call with an Idempotency-Key, repeated: one more task, the same answer.
    patient = client(market, market.keys["retry"])
    first = patient.images.generate(
        model=MODEL, prompt="a patient glacier", size="128x128", response_format="b64_json",
        extra_headers={"Idempotency-Key": "glacier-1"},
    )
    again = patient.images.with_raw_response.generate(
        model=MODEL, prompt="a patient glacier", size="128x128", response_format="b64_json",
        extra_headers={"Idempotency-Key": "glacier-1"},
    )
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.parse().data[0].b64_json == first.data[0].b64_json
    assert len(tasks_of()) == 2
