"""PyTorch integration: re-initialize an ``nn.Module`` by layer type and name rules, and fill
``DTensor`` / FSDP2 sharded parameters so the gathered tensor does not depend on the world size.

Every parameter's stream key is its name in ``model.named_parameters()`` (e.g.
``"fc1.weight"``), the key onnx-reinit uses for an initializer of the same name: a weight that
``torch.onnx.export`` stores unchanged under its parameter name (Linear → Gemm, Conv) gets, from
``initforge.onnx.reinit`` with the same seed, scheme and fans, exactly the bits
``init_module_`` gave it. Weights the exporter transposes or renames, and recurrent weights
(ONNX orders the gates i, o, f, c where PyTorch has i, f, g, o), get different — equally
distributed — values.
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from . import UsageError, _key, _seed, init_, init_shard_

__all__ = ["init_module_", "init_dtensor_", "dtensor_ranges"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONVT = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
         nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_RNN = (nn.RNN, nn.LSTM, nn.GRU)
_GATES = {nn.RNN: 1, nn.LSTM: 4, nn.GRU: 3}


def _is_dtensor(p: Any) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch built without distributed
        return False
    return isinstance(p, DTensor)


def dtensor_ranges(dt: Any) -> List[Tuple[int, int]]:
    """The box of the global tensor that this rank's local shard of ``dt`` holds, one
    (start, end) per dimension, from the DTensor's mesh and placements (torch's own
    ``compute_local_shape_and_global_offset``: ``Shard(d)`` splits dim d as ``torch.chunk``).
    Raises UsageError for ``Partial`` placements and layouts that are not a box."""
    from torch.distributed.tensor import Partial
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    if any(isinstance(p, Partial) for p in dt.placements):
        raise UsageError("init_dtensor_: a Partial placement holds partial sums, not a shard")
    shape, offset = compute_local_shape_and_global_offset(dt.shape, dt.device_mesh,
                                                          dt.placements)
    local = tuple(dt.to_local().shape)
    if tuple(shape) != local:
        raise UsageError(f"init_dtensor_: local shard {local} is not the box {tuple(shape)} "
                         f"its placements {dt.placements} describe")
    return [(int(o), int(o) + int(n)) for o, n in zip(offset, shape)]


@torch.no_grad()
def init_dtensor_(dt: Any, scheme: str, *, seed: int, key: Any, **kw: Any) -> Any:
    """Fill every rank's local shard of the DTensor ``dt`` (or an FSDP2 sharded parameter)
    with the values :func:`initforge.init_` gives the full tensor at those positions, so the
    gathered tensor is bit-identical for any world size and mesh. Fans come from the global
    shape; ``kw`` as for :func:`initforge.init_`. Call it on every rank."""
    local = dt.to_local()
    init_shard_(local, scheme, global_shape=tuple(dt.shape), ranges=dtensor_ranges(dt),
                seed=seed, key=key, **kw)
    return dt


def _fill(p: Any, scheme: str, seed: int, key: str, **kw: Any) -> None:
    if _is_dtensor(p):
        init_dtensor_(p, scheme, seed=seed, key=key, **kw)
    else:
        init_(p, scheme, seed=seed, key=key, **kw)


def _uniform(bound: float) -> str:
    # repr round-trips a float exactly, and the scheme parser reads it back exactly.
    return f"uniform({-bound!r}, {bound!r})"


def _plan_module(name: str, m: nn.Module, d: Mapping[str, str], pytorch: bool):
    """(param name, scheme, fill kwargs, blocks) for the parameters this module type knows;
    blocks > 1 fills that many equal row blocks, each keyed ``name#b`` (onnx-reinit's gate
    blocks). Unknown types yield nothing."""
    pre = f"{name}." if name else ""
    if isinstance(m, nn.Linear) or isinstance(m, _CONV + _CONVT):
        transposed = isinstance(m, _CONVT)
        groups = getattr(m, "groups", 1)
        kw: Dict[str, Any] = dict(groups=groups, transposed=transposed)
        if pytorch:
            # kaiming_uniform_(a=√5) on PyTorch's fans is U(±1/√fan_in); the bias U(±1/√fan_in).
            fan_in, _ = _torch_fans(m.weight)
            yield pre + "weight", _uniform(1 / math.sqrt(fan_in)), {}, 1
            if m.bias is not None:
                yield pre + "bias", _uniform(1 / math.sqrt(fan_in)) if fan_in > 0 else "zeros", {}, 1
        else:
            yield pre + "weight", d["weight"], kw, 1
            if m.bias is not None:
                yield pre + "bias", d["bias"], {}, 1
    elif isinstance(m, nn.Embedding):
        yield pre + "weight", d["embedding"] if not pytorch else "normal(0, 1)", \
            dict(fans=(1, m.embedding_dim)), 1
    elif isinstance(m, _NORM):
        if getattr(m, "weight", None) is not None:
            yield pre + "weight", "ones" if pytorch else d["norm"], {}, 1
        if getattr(m, "bias", None) is not None:
            yield pre + "bias", "zeros", {}, 1
    elif isinstance(m, _RNN):
        gates = _GATES[type(m)]
        h = m.hidden_size
        for pname, _ in m.named_parameters(recurse=False):
            if pytorch:
                yield pre + pname, _uniform(1 / math.sqrt(h)), {}, 1
            elif pname.startswith("weight_ih"):
                yield pre + pname, d["recurrent_w"], {}, gates
            elif pname.startswith("weight_hh"):
                yield pre + pname, d["recurrent_r"], {}, gates
            elif pname.startswith("bias"):
                yield pre + pname, d["bias"], {}, 1
    elif isinstance(m, nn.MultiheadAttention):
        if m.in_proj_weight is not None:
            if pytorch:
                # xavier_uniform_ on the packed (3E, E) matrix, PyTorch's fans.
                e3, e = m.in_proj_weight.shape
                yield pre + "in_proj_weight", "glorot_uniform", dict(fans=(e, e3)), 1
            else:
                yield pre + "in_proj_weight", d["weight"], {}, 3
        else:
            for part in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                yield pre + part, "glorot_uniform" if pytorch else d["weight"], {}, 1
        if m.in_proj_bias is not None:
            yield pre + "in_proj_bias", "zeros", {}, 1
        for part in ("bias_k", "bias_v"):
            if getattr(m, part, None) is not None:
                yield pre + part, "xavier_normal" if pytorch else "normal(0, 0.02)", \
                    dict(fans=(m.embed_dim, 1)) if pytorch else {}, 1
        # out_proj is an nn.Linear submodule: planned as one, its bias zeroed as PyTorch does.


def _torch_fans(w: torch.Tensor) -> Tuple[int, int]:
    shape = tuple(w.shape)
    if len(shape) < 2:
        return (shape[0] if shape else 1, shape[0] if shape else 1)
    rf = 1
    for k in shape[2:]:
        rf *= k
    return shape[1] * rf, shape[0] * rf


_DEFAULTS = {
    "weight": "he_uniform",
    "bias": "zeros",
    "embedding": "normal(0, 1)",
    "norm": "ones",
    "recurrent_w": "glorot_uniform",
    "recurrent_r": "orthogonal",
}


@torch.no_grad()
def init_module_(
    model: nn.Module,
    rules: Optional[Mapping[str, str]] = None,
    *,
    seed: int,
    defaults: Optional[Mapping[str, str]] = None,
    pytorch: bool = False,
    convention: str = "true",
    warn: bool = True,
) -> List[Dict[str, Any]]:
    """Re-initialize ``model``'s parameters in place, each keyed by its parameter name, and
    return one record per parameter: ``{"name", "scheme", "shape", "fans", "blocks"}``, or
    ``{"name", "skipped": reason}`` for a parameter left alone (also reported in one
    ``warnings.warn`` unless ``warn=False``).

    By module type, with ``defaults`` overriding these keys: Linear, Conv*d (fans
    in = C/g·∏k, out = M/g·∏k: true connectivity with ``groups``) and ConvTranspose*d
    (weight read as [in, out/g, k…]) get ``weight`` (he_uniform) and ``bias`` (zeros);
    Embedding ``embedding`` (normal(0, 1)) with fans (1, D); norms ``norm`` (ones) and bias
    zeros; RNN/LSTM/GRU ``recurrent_w`` (glorot_uniform) and ``recurrent_r`` (orthogonal)
    per gate block (H rows each, keyed ``name#b``), biases ``bias``; MultiheadAttention's
    packed ``in_proj_weight`` per q/k/v part (E rows each, fans (E, E)), its biases zeros.

    ``rules`` maps a glob on parameter names (fnmatch: ``"*.weight"``, ``"encoder.*"``) to a
    scheme; the first matching rule wins over the type's choice, and also reaches parameters
    of module types not listed above (fans from the shape, PyTorch's ``[out, in, k…]``).

    ``pytorch=True`` reproduces PyTorch's default init instead: U(±1/√fan_in) for Linear and
    Conv weights and biases (kaiming_uniform with a = √5 on PyTorch's fans, whatever the
    groups), N(0, 1) embeddings, U(±1/√H) for recurrent parameters, xavier_uniform on the
    packed in_proj, ones/zeros for norms: the same distributions as torch, initforge's bits.
    """
    d = dict(_DEFAULTS)
    for k, v in (defaults or {}).items():
        if k not in d:
            raise UsageError(f"defaults: unknown key {k!r} (valid: {', '.join(d)})")
        d[k] = v
    _seed(seed)
    rules = dict(rules or {})
    planned: Dict[str, Tuple[str, Dict[str, Any], int]] = {}
    for mname, m in model.named_modules():
        for pname, scheme, kw, blocks in _plan_module(mname, m, d, pytorch):
            planned.setdefault(pname, (scheme, kw, blocks))
        if isinstance(m, nn.MultiheadAttention) and m.out_proj.bias is not None:
            planned[f"{mname}.out_proj.bias" if mname else "out_proj.bias"] = ("zeros", {}, 1)
    report: List[Dict[str, Any]] = []
    skipped: List[str] = []
    for name, p in model.named_parameters():
        rule = next((s for g, s in rules.items() if fnmatch.fnmatchcase(name, g)), None)
        if rule is not None:
            kw = dict(planned.get(name, ("", {}, 1))[1])
            entry = (rule, kw, planned.get(name, ("", {}, 1))[2])
        elif name in planned:
            entry = planned[name]
        else:
            skipped.append(name)
            report.append({"name": name, "skipped": "no rule matches it and its module type "
                           f"({type(model.get_submodule(name.rpartition('.')[0])).__name__}) "
                           "has no default"})
            continue
        scheme, kw, blocks = entry
        kw = dict(kw)
        kw.setdefault("convention", "framework" if pytorch else convention)
        shape = tuple(p.shape)
        try:
            if blocks > 1:
                if _is_dtensor(p):
                    raise UsageError(f"{name}: per-block init of a sharded (DTensor) parameter "
                                     "is not supported; use a rule for it")
                rows = shape[0] // blocks
                for b in range(blocks):
                    init_(p[b * rows:(b + 1) * rows], scheme, seed=seed,
                          key=f"{name}#{b}", **kw)
            else:
                _fill(p, scheme, seed, name, **kw)
        except Exception as e:  # name the parameter, keep the class
            raise type(e)(f"{name} {shape}: {e}") from e
        report.append({"name": name, "scheme": scheme, "shape": shape, "blocks": blocks,
                       "fans": kw.get("fans")})
    for mname, m in model.named_modules():
        if isinstance(m, _NORM) and getattr(m, "running_mean", None) is not None:
            m.reset_running_stats()
    if skipped and warn:
        warnings.warn(f"init_module_: left {len(skipped)} parameter(s) alone (no rule, no "
                      f"default for their module type): {', '.join(skipped)}", stacklevel=2)
    return report
