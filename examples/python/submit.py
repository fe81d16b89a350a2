#!/usr/bin/env python3
"""Pays for a prompt on the marketplace, waits for the image, checks it and saves it.

    python examples/python/submit.py --data-dir /tmp/flownet-py "jagged alpine peaks" --out peaks.png

The best-ranked node offering the model within --max-price is paid (see
examples/python/terrain_node.py for one that serves terrain-py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import flownet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt")
    parser.add_argument("--data-dir", type=Path, default=Path.home() / ".flownet", help="ledger, keys and blobs")
    parser.add_argument("--key", default="alice", help="the paying account's key (made if missing)")
    parser.add_argument("--model", default="terrain-py")
    parser.add_argument("--max-price", default=None, help="the most to pay, e.g. 0.5")
    parser.add_argument("--params", default="{}", help='model parameters as JSON, e.g. \'{"difficulty": 80}\'')
    parser.add_argument("--out", type=Path, default=Path("terrain.png"))
    parser.add_argument("--stars", type=int, default=None, help="rate the output 1..5 afterwards")
    args = parser.parse_args()

    ledger = flownet.Ledger.open(args.data_dir)
    try:
        account = flownet.Account.load(ledger, args.key)
    except flownet.NotFound:
        account = flownet.Account.create(ledger, args.key)
    client = flownet.Client(ledger, account)
    nodes = client.nodes(model=args.model)
    if not nodes:
        print(f"no node offers {args.model}: start examples/python/terrain_node.py first", file=sys.stderr)
        return 1
    for n in nodes:
        price = next(m["price"] for m in n["models"] if m["model_id"] == args.model)
        print(f"node {n['name']!r} {n['owner']} score {n['score']:.2f} price {price}", file=sys.stderr)

    try:
        task = client.submit(args.prompt, args.model, max_price=args.max_price, params=json.loads(args.params))
        print(f"task {task.id} paid; waiting for the output", file=sys.stderr)
        output = task.wait(timeout=300)
    except flownet.InsufficientFunds as e:
        print(f"cannot pay: {e}", file=sys.stderr)
        return 1
    output.save(args.out)
    bounty = client.rate(task, args.stars) if args.stars else None
    print(
        json.dumps(
            {
                "task": task.id,
                "path": str(args.out),
                "sha256": output.sha256,
                "mime": output.mime,
                "nft": output.metadata["nft"],
                "weights_sha256": output.metadata["weights_sha256"],
                "bounty": None if bounty is None else str(bounty),
                "balance": str(account.balance()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
