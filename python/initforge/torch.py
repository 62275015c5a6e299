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
import itertools
import math
import warnings
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from . import UsageError, _seed, canonical, init_, init_shard_

__all__ = ["init_module_", "init_dtensor_", "init_dtensor_blocks_", "dtensor_boxes",
           "dtensor_ranges"]

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


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _take(runs: List[Tuple[int, int]], a: int, b: int) -> List[Tuple[int, int]]:
    """Elements a..b (local positions) of the index list ``runs`` (global (start, end) runs)."""
    out: List[Tuple[int, int]] = []
    pos = 0
    for s, e in runs:
        lo, hi = max(a, pos), min(b, pos + e - s)
        if lo < hi:
            out.append((s + lo - pos, s + hi - pos))
        pos += e - s
    return out


def _merge(runs: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    out: List[Tuple[int, int]] = []
    for s, e in runs:
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], e)
        elif s < e:
            out.append((s, e))
    return out


def _placement_types() -> Tuple[Any, Any, Any, Any]:
    from torch.distributed.tensor import Partial, Replicate, Shard

    try:
        from torch.distributed.tensor.placement_types import _StridedShard
    except ImportError:  # torch before FSDP2 + TP
        _StridedShard = None
    return Shard, _StridedShard, Replicate, Partial


def _dim_runs(dt: Any, what: str) -> Optional[List[List[Tuple[int, int]]]]:
    """Per dimension of ``dt``'s global shape, the global indices this rank's local shard holds
    along it, in local order, as (start, end) runs; None when this rank is not in the mesh.

    Placements apply left to right over the mesh dimensions, as DTensor lays them out:
    ``Shard(d)`` on a mesh dimension of size n keeps chunk c (the rank's coordinate) of
    ``torch.chunk(indices, n)`` (chunks of ⌈L/n⌉); ``_StridedShard(d, split_factor=s)`` first
    cuts the L indices into s pieces of ⌈L/s⌉ and keeps chunk c of each piece (⌈len/n⌉), so a
    strided shard holds up to s runs; ``Replicate`` keeps all. ``Partial`` (partial sums) and
    unknown placements raise UsageError."""
    Shard, Strided, Replicate, Partial = _placement_types()
    mesh = dt.device_mesh
    coord = mesh.get_coordinate()
    if coord is None:
        return None
    shape = [int(n) for n in dt.shape]
    runs = [[(0, n)] for n in shape]
    for mdim, p in enumerate(dt.placements):
        n, c = int(mesh.size(mdim)), int(coord[mdim])
        if isinstance(p, Replicate):
            continue
        if Strided is not None and isinstance(p, Strided):
            d = int(p.dim) % len(shape)
            length = sum(e - s for s, e in runs[d])
            piece = _ceil_div(length, int(p.split_factor))
            kept: List[Tuple[int, int]] = []
            for i in range(int(p.split_factor)):
                a, b = min(piece * i, length), min(piece * (i + 1), length)
                k = _ceil_div(b - a, n)
                kept += _take(runs[d], a + min(k * c, b - a), a + min(k * (c + 1), b - a))
            runs[d] = _merge(kept)
        elif isinstance(p, Shard):
            d = int(p.dim) % len(shape)
            length = sum(e - s for s, e in runs[d])
            k = _ceil_div(length, n)
            runs[d] = _take(runs[d], min(k * c, length), min(k * (c + 1), length))
        elif isinstance(p, Partial):
            raise UsageError(f"{what}: a Partial placement (mesh dimension {mdim}) holds partial "
                             "sums, not a shard")
        else:
            raise UsageError(f"{what}: placement {p!r} on mesh dimension {mdim} is not Shard, "
                             "_StridedShard or Replicate; initforge cannot tell which elements "
                             "this rank holds")
    local = tuple(dt.to_local().shape)
    want = tuple(sum(e - s for s, e in r) for r in runs)
    if want != local:
        raise UsageError(f"{what}: local shard {local} is not the {want} its placements "
                         f"{tuple(dt.placements)} describe on mesh {tuple(mesh.shape)}")
    return runs


def dtensor_boxes(dt: Any) -> List[Tuple[List[Tuple[int, int]], List[Tuple[int, int]]]]:
    """The boxes of the global tensor that this rank's local shard of ``dt`` holds, each as
    (global ranges, local ranges): one (start, end) per dimension, the same extents in both.
    ``Shard``/``Replicate`` placements give one box; a ``_StridedShard`` (FSDP2 + tensor
    parallel) gives one per run of consecutive indices (up to its ``split_factor``).
    Raises UsageError for ``Partial`` and unknown placements; empty on a rank outside the mesh
    or holding no elements."""
    return _boxes(_dim_runs(dt, "dtensor_boxes"))


def _boxes(runs: Optional[List[List[Tuple[int, int]]]]) -> List[Tuple[List[Tuple[int, int]],
                                                                     List[Tuple[int, int]]]]:
    if runs is None:
        return []
    per_dim = []
    for r in runs:
        pos, pairs = 0, []
        for s, e in r:
            pairs.append(((s, e), (pos, pos + e - s)))
            pos += e - s
        per_dim.append(pairs)
    return [([g for g, _ in cell], [loc for _, loc in cell])
            for cell in itertools.product(*per_dim)]


def dtensor_ranges(dt: Any) -> List[Tuple[int, int]]:
    """The box of the global tensor that this rank's local shard of ``dt`` holds, one
    (start, end) per dimension, from the DTensor's mesh and placements (``Shard(d)`` splits
    dim d as ``torch.chunk``). Raises UsageError for ``Partial`` placements and for layouts
    that are not one box (a ``_StridedShard`` holding several runs: see
    :func:`dtensor_boxes`)."""
    runs = _dim_runs(dt, "dtensor_ranges")
    if runs is None:
        return [(0, 0)] * len(dt.shape)
    if any(len(r) > 1 for r in runs):
        raise UsageError(f"dtensor_ranges: the local shard of placements "
                         f"{tuple(dt.placements)} is {len(_boxes(runs))} boxes, not one; use "
                         "dtensor_boxes")
    return [r[0] if r else (0, 0) for r in runs]


def _whole_matrix(scheme: str) -> bool:
    # Orthogonal is a QR of the whole matrix: init_shard_ refuses it.
    return canonical(scheme).startswith("orthogonal")


def _fill_dtensor(dt: Any, scheme: str, *, seed: int, key: Any, rows: Optional[Tuple[int, int]],
                  what: str, **kw: Any) -> None:
    """Fill the part of ``dt``'s local shard inside global rows ``rows`` (all rows if None) with
    what :func:`initforge.init_` gives the tensor of those rows alone, keyed ``key``."""
    gshape = tuple(int(n) for n in dt.shape)
    if rows is None:
        r0, r1 = 0, (gshape[0] if gshape else 1)
    else:
        r0, r1 = rows
    bshape = ((r1 - r0,) + gshape[1:]) if gshape else ()
    local = dt.to_local()
    whole = None
    cut = not _whole_matrix(scheme)
    for granges, lranges in _boxes(_dim_runs(dt, what)):
        if gshape:
            (g0, g1), (l0, _) = granges[0], lranges[0]
            a, b = max(g0, r0), min(g1, r1)
            if a >= b:
                continue
            block = [(a - r0, b - r0)] + list(granges[1:])
            loc = [(l0 + a - g0, l0 + b - g0)] + list(lranges[1:])
        else:
            block, loc = [], []
        view = local[tuple(slice(s, e) for s, e in loc)]
        if view.numel() == 0:
            continue
        if not cut:
            # Cannot be cut: compute the whole block once (its memory, not the tensor's) and
            # copy this box out of it.
            if whole is None:
                whole = torch.empty(bshape, dtype=local.dtype)
                init_(whole, scheme, seed=seed, key=key, **kw)
            view.copy_(whole[tuple(slice(s, e) for s, e in block)])
        elif view.is_contiguous():
            init_shard_(view, scheme, global_shape=bshape, ranges=block, seed=seed, key=key,
                        **kw)
        else:  # a column box of a row-major shard: fill a contiguous copy, then write it in
            tmp = torch.empty(view.shape, dtype=local.dtype)
            init_shard_(tmp, scheme, global_shape=bshape, ranges=block, seed=seed, key=key,
                        **kw)
            view.copy_(tmp)


@torch.no_grad()
def init_dtensor_(dt: Any, scheme: str, *, seed: int, key: Any, **kw: Any) -> Any:
    """Fill every rank's local shard of the DTensor ``dt`` (or an FSDP2 sharded parameter)
    with the values :func:`initforge.init_` gives the full tensor at those positions, so the
    gathered tensor is bit-identical for any world size and mesh: ``Shard``, ``Replicate``
    and ``_StridedShard`` placements (each box of the shard filled by
    :func:`initforge.init_shard_`). Fans come from the global shape; ``kw`` as for
    :func:`initforge.init_`. Orthogonal, a QR of the whole matrix, is computed whole on each
    rank (the full tensor's memory) and the shard copied from it. Call it on every rank."""
    _fill_dtensor(dt, scheme, seed=seed, key=key, rows=None,
                  what=f"init_dtensor_ {key!r}", **kw)
    return dt


@torch.no_grad()
def init_dtensor_blocks_(dt: Any, scheme: str, blocks: int, *, seed: int, key: str,
                         **kw: Any) -> Any:
    """Fill the DTensor ``dt`` as ``blocks`` equal row blocks of R = rows/blocks rows, block b
    with what :func:`initforge.init_` gives an [R, …] tensor keyed ``f"{key}#{b}"`` (fans from
    the block's shape): a recurrent weight's gates, MultiheadAttention's packed q/k/v. Each
    block is intersected with every box of this rank's shard, so the gathered tensor equals
    the unsharded per-block init for any world size and mesh. Call it on every rank."""
    rows = int(dt.shape[0]) if len(dt.shape) else 0
    if blocks < 1 or rows % blocks:
        raise UsageError(f"init_dtensor_blocks_ {key!r}: {rows} rows do not split into "
                         f"{blocks} equal blocks")
    r = rows // blocks
    for b in range(blocks):
        _fill_dtensor(dt, scheme, seed=seed, key=f"{key}#{b}", rows=(b * r, (b + 1) * r),
                      what=f"init_dtensor_blocks_ {key!r}", **kw)
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

    DTensor parameters (FSDP2 ``fully_shard``, ``distribute_tensor``) are filled shard by
    shard (:func:`init_dtensor_`, per-block ones by :func:`init_dtensor_blocks_`): call it on
    every rank; the gathered model is bit-identical to the unsharded one for any world size.
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
            if blocks > 1 and _is_dtensor(p):
                init_dtensor_blocks_(p, scheme, blocks, seed=seed, key=name, **kw)
            elif blocks > 1:
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
