"""FlowNet for Python: the decentralized AI-inference marketplace on the same Rust core
as the ``flownet`` command.

Model developers put a Python function on the marketplace::

    import flownet

    ledger = flownet.Ledger.open("~/.flownet/ledger.db")
    node = flownet.Node(ledger, flownet.Account.load(ledger), name="my node")

    @node.model("my-model", price="0.5", kind="text-to-image")
    def generate(prompt: str, params: dict) -> bytes:
        ...

    node.serve()  # claims paid tasks, calls generate, delivers, gets paid

Users pay for prompts::

    client = flownet.Client(ledger, flownet.Account.load(ledger, "alice"))
    task = client.submit("a quiet valley", "my-model")
    task.wait(timeout=60).save("valley.png")

The same code runs on FlowNet's contracts on Flow with
``flownet.Ledger.open("emulator")`` (or ``"testnet"``, ``"mainnet"``), configured from
the environment as ``flownet --network ...`` is.
"""

from __future__ import annotations

from flownet import exceptions
from flownet._flownet import (
    Account,
    Client,
    Ledger,
    ModelDecorator,
    Node,
    Output,
    SignedEnvelope,
    Task,
    TokenStream,
    __version__,
)
from flownet.exceptions import (
    AlreadyExists,
    AlreadyRated,
    BadSequence,
    BadSignature,
    Blob,
    DeadlineNotPassed,
    DeadlinePassed,
    Faucet,
    FlowNetError,
    Inference,
    InsufficientFunds,
    InvalidInput,
    InvalidState,
    ModelNotOffered,
    Network,
    NodeInactive,
    NotFound,
    Overflow,
    ParamsTooLarge,
    PriceAboveMax,
    PromptTooLarge,
    Storage,
    Unauthorized,
    WrongNode,
)

__all__ = [
    "Account",
    "AlreadyExists",
    "AlreadyRated",
    "BadSequence",
    "BadSignature",
    "Blob",
    "Client",
    "DeadlineNotPassed",
    "DeadlinePassed",
    "Faucet",
    "FlowNetError",
    "Inference",
    "InsufficientFunds",
    "InvalidInput",
    "InvalidState",
    "Ledger",
    "ModelDecorator",
    "ModelNotOffered",
    "Network",
    "Node",
    "NodeInactive",
    "NotFound",
    "Output",
    "Overflow",
    "ParamsTooLarge",
    "PriceAboveMax",
    "PromptTooLarge",
    "SignedEnvelope",
    "Storage",
    "Task",
    "TokenStream",
    "Unauthorized",
    "WrongNode",
    "__version__",
    "exceptions",
]
