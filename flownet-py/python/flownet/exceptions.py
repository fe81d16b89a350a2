"""FlowNet's exceptions: one base class and one subclass per kind of core error.

Every error the Rust core reports arrives as the subclass named after its kind,
with the core's message; errors of no core kind (a missing node for a model, a
bad key file) arrive as :class:`FlowNetError` itself. ``kind`` is the same name
the ``flownet --json`` command prints in ``{"error": {"kind": ...}}``.
"""

from __future__ import annotations

from typing import ClassVar, Dict, Optional, Type


class FlowNetError(Exception):
    """Base class of every FlowNet error."""

    #: The core's name for the error's kind, or None for errors of no core kind.
    kind: ClassVar[Optional[str]] = None


class InsufficientFunds(FlowNetError):
    """The account cannot pay the amount."""

    kind = "insufficient_funds"


class PriceAboveMax(FlowNetError):
    """The node's price is above the max price given."""

    kind = "price_above_max"


class WrongNode(FlowNetError):
    """The task is addressed to another node."""

    kind = "wrong_node"


class Unauthorized(FlowNetError):
    """The signer may not do this (cancel another's task, rate its own output...)."""

    kind = "unauthorized"


class DeadlinePassed(FlowNetError):
    """The claim or fulfil deadline has passed."""

    kind = "deadline_passed"


class DeadlineNotPassed(FlowNetError):
    """The deadline has not passed yet (expire, sweep)."""

    kind = "deadline_not_passed"


class AlreadyRated(FlowNetError):
    """The account has rated this task already."""

    kind = "already_rated"


class AlreadyExists(FlowNetError):
    """The account, ledger or model exists already."""

    kind = "already_exists"


class Faucet(FlowNetError):
    """The faucet refused: it was used already, or the ledger has none."""

    kind = "faucet"


class BadSignature(FlowNetError):
    """The envelope is not signed by the signer's registered key."""

    kind = "bad_signature"


class BadSequence(FlowNetError):
    """The envelope's sequence number is not the signer's next one (a replay)."""

    kind = "bad_sequence"


class PromptTooLarge(FlowNetError):
    """The prompt is longer than the ledger accepts."""

    kind = "prompt_too_large"


class ParamsTooLarge(FlowNetError):
    """The params are longer than the ledger accepts."""

    kind = "params_too_large"


class NotFound(FlowNetError, LookupError):
    """No such account, node, task, key, model or ledger."""

    kind = "not_found"


class InvalidState(FlowNetError):
    """The task's status does not allow this."""

    kind = "invalid_state"


class NodeInactive(FlowNetError):
    """The node is paused."""

    kind = "node_inactive"


class ModelNotOffered(FlowNetError):
    """The node does not offer the model."""

    kind = "model_not_offered"


class InvalidInput(FlowNetError, ValueError):
    """An argument is malformed (an address, an amount, stars, a name...)."""

    kind = "invalid_input"


class Overflow(FlowNetError, ArithmeticError):
    """An amount would leave the range of FLOWNET's fixed-point numbers."""

    kind = "overflow"


class Storage(FlowNetError):
    """The ledger's storage failed (a corrupt or unreadable ledger file)."""

    kind = "storage"


class Inference(FlowNetError):
    """A model failed to run (a model function raised, an ONNX model failed)."""

    kind = "inference"


class Blob(FlowNetError):
    """An output's bytes are missing or do not match the SHA-256 on the ledger."""

    kind = "blob"


class Network(FlowNetError, ConnectionError):
    """A node's endpoint, or a Flow network's Access API, could not be reached."""

    kind = "network"


#: Each exception class by its kind, used by the native module to raise them.
BY_KIND: Dict[str, Type[FlowNetError]] = {
    cls.kind: cls
    for cls in (
        InsufficientFunds,
        PriceAboveMax,
        WrongNode,
        Unauthorized,
        DeadlinePassed,
        DeadlineNotPassed,
        AlreadyRated,
        AlreadyExists,
        Faucet,
        BadSignature,
        BadSequence,
        PromptTooLarge,
        ParamsTooLarge,
        NotFound,
        InvalidState,
        NodeInactive,
        ModelNotOffered,
        InvalidInput,
        Overflow,
        Storage,
        Inference,
        Blob,
        Network,
    )
    if cls.kind is not None
}

__all__ = ["BY_KIND", "FlowNetError", *sorted(cls.__name__ for cls in BY_KIND.values())]
