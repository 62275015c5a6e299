"""onnx-reinit in process: re-initialize an exported ONNX model's weights by layer type and the
activation that follows, rewriting only the payload bytes; diagnose a model's initialization.

Both return the document the CLI prints with ``--json`` (parsed). Errors raise
:class:`initforge.ModelError` (the CLI's exit 1: unreadable model, a rule that cannot apply,
an existing output), :class:`initforge.UsageError` (exit 2: a bad scheme or rule key) or, when
interrupted, ``KeyboardInterrupt`` after the rewrite has cancelled and removed its temporary
files (nothing is written, the input is intact). The GIL is released while they run.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from . import _native
from ._native import DEFAULT_SEED

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["reinit", "inspect", "DEFAULT_SEED"]


def reinit(
    model: PathLike,
    out: Optional[PathLike] = None,
    *,
    rules: Optional[Mapping[str, str]] = None,
    name_rules: Sequence[str] = (),
    seed: int = DEFAULT_SEED,
    dry_run: bool = False,
    in_place: bool = False,
    force: bool = False,
    compat: str = "true",
    preset: Optional[str] = None,
) -> Dict[str, Any]:
    """Re-initialize ``model``'s weights; write ``out`` (default ``<stem>.reinit.onnx`` beside
    the input), or the input itself (``in_place``), or nothing (``dry_run``).

    ``rules`` maps the CLI's rule flags without ``--`` (``relu``, ``leaky_relu``, ``prelu``,
    ``elu``, ``selu``, ``gelu``, ``silu``, ``tanh``, ``sigmoid``, ``softmax``, ``linear``,
    ``bias``, ``norm``, ``embedding``, ``recurrent``, ``recurrent_w``, ``recurrent_r``,
    ``prelu_slope``) to a scheme or ``"keep"``; ``name_rules`` are ``"GLOB=SCHEME"`` strings
    (``--rule``, first match wins). ``compat="pytorch"`` uses PyTorch's fans. The same seed and
    rules give the CLI's output byte for byte; returns the ``--json`` document.

    ``preset`` is the CLI's ``--preset``: an initialization recipe (``bert``, ``gpt2``,
    ``llama``, ``t5``, ``resnet``, ``vit``, with knobs as ``"gpt2(initializer_range=0.02,
    n_layer=12)"`` or ``"resnet(zero_init_residual=1)"``) below ``rules`` and ``name_rules``;
    the document then has a ``preset`` member with the knobs and the residual structure used.
    """
    if isinstance(name_rules, str):
        name_rules = [name_rules]
    doc = _native.reinit(
        os.fspath(model),
        None if out is None else os.fspath(out),
        [(str(k), str(v)) for k, v in (rules or {}).items()],
        [str(r) for r in name_rules],
        int(seed),
        bool(dry_run),
        bool(in_place),
        bool(force),
        compat,
        preset,
    )
    return json.loads(doc)


def inspect(
    model: PathLike,
    *,
    compat: str = "true",
    too_small: float = 0.1,
    too_large: float = 10.0,
) -> Dict[str, Any]:
    """Diagnose ``model``'s initialization (``onnx-reinit inspect --json``, without the forward
    pass): per weight its role, fans, measured std against the recommended one, and a verdict
    (too small below ``too_small``× the recommended std, too large above ``too_large``×)."""
    return json.loads(_native.inspect(os.fspath(model), compat, float(too_small),
                                      float(too_large)))
