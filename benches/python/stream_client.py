"""Streams chat completions from an OpenAI-compatible server and measures, at the
client, the time to the first token and the tokens per second of the stream.

Used by benches/compare_server.sh for FlowNet's gateway and llama-server alike: the
same requests, the same client, one after the other. Prints one JSON object.
Usage: stream_client.py URL MODEL N [API_KEY] [EXTRA_JSON]
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import time
import urllib.parse
from typing import Any, Dict, List

PROMPTS = [
    "Write a short story about a robot who learns to paint.",
    "Describe a walk through a forest in autumn.",
    "Explain how a bicycle works to a child.",
    "Write a letter to a friend about a trip to the sea.",
]


def one(url: str, model: str, key: str, i: int, extra: Dict[str, Any]) -> Dict[str, Any]:
    u = urllib.parse.urlparse(url)
    body = {
        "model": model,
        # A different first word each time: no server can reuse the last prompt whole.
        "messages": [{"role": "user", "content": f"({i}) {PROMPTS[i % len(PROMPTS)]}"}],
        "max_tokens": 64,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"HTTP {resp.status}: {resp.read()[:500]!r}")
    first = last = None
    pieces = 0
    usage: Dict[str, Any] = {}
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        event = json.loads(data)
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices", []):
            if (choice.get("delta") or {}).get("content"):
                now = time.perf_counter()
                first = first if first is not None else now
                last = now
                pieces += 1
    conn.close()
    done = time.perf_counter()
    if first is None or last is None:
        raise SystemExit(f"request {i} streamed no text")
    tokens = int(usage.get("completion_tokens", pieces))
    return {
        "ttft_ms": (first - started) * 1e3,
        "total_ms": (done - started) * 1e3,
        "tokens": tokens,
        # The stream's rate at the client, first token to last.
        "tok_s": (tokens - 1) / (last - first) if last > first and tokens > 1 else float("nan"),
    }


def pct(xs: List[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def main() -> None:
    url, model, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    key = sys.argv[4] if len(sys.argv) > 4 else ""
    extra = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    for i in range(2):  # warm-up, not counted
        one(url, model, key, 1000 + i, extra)
    runs = [one(url, model, key, i, extra) for i in range(n)]
    ttft = [r["ttft_ms"] for r in runs]
    rates = [r["tok_s"] for r in runs]
    print(json.dumps({
        "n": n,
        "ttft_p50_ms": statistics.median(ttft),
        "ttft_p99_ms": pct(ttft, 99),
        "tok_s_p50": statistics.median(rates),
        "tokens_p50": statistics.median(r["tokens"] for r in runs),
        "total_p50_ms": statistics.median(r["total_ms"] for r in runs),
    }))


if __name__ == "__main__":
    main()
