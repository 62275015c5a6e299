"""initforge: neural-network weight initialization with exact formulas and deterministic,
seeded, memory-bound fills — for numpy arrays and PyTorch tensors, shard by shard, and for
exported ONNX models (``initforge.onnx``).

The values written for a tensor are a pure function of (seed, key, scheme, fans, shape,
dtype): the same bits as init-core (Rust), the ``#[derive(Initialize)]`` macro and the
``onnx-reinit`` CLI, on any machine, thread count or shard layout.

Schemes use the CLI's grammar, e.g. ``"he_normal"`` (N(0, 2/fan_in)), ``"glorot_uniform"``
(U(±√(6/(fan_in + fan_out)))), ``"he_truncated_normal"``, ``"normal(0, 0.02)"``,
``"uniform(-0.1, 0.1)"``, ``"he_uniform(mode=fan_out, nonlinearity=leaky_relu(0.2))"``,
``"orthogonal"``, ``"eye"``, ``"dirac"``, ``"zeros"``.
"""

from __future__ import annotations

import os as _os
from typing import Any, Optional, Sequence, Tuple, Union

from . import _native
from ._native import (
    CHUNK,
    DEFAULT_SEED,
    CancelledError,
    Error,
    ModelError,
    UsageError,
    key_of,
)

__all__ = [
    "init_",
    "init_shard_",
    "fans",
    "expected_std",
    "canonical",
    "key_of",
    "Error",
    "UsageError",
    "ModelError",
    "CancelledError",
    "CHUNK",
    "DEFAULT_SEED",
]

# The kind and exit code each error class stands for (the CLI's exit codes).
Error.kind, Error.exit_code = "error", 1
UsageError.kind, UsageError.exit_code = "usage", 2
ModelError.kind, ModelError.exit_code = "bad_model", 1
CancelledError.kind, CancelledError.exit_code = "cancelled", 130

_U64 = 1 << 64
_NUMPY_DTYPES = {"float32", "float64", "float16", "bfloat16"}
# The native dtype codes (index = code).
_DT_NAMES = ("float32", "float64", "float16", "bfloat16")
# numpy scalar type → dtype code (dtype.name is slow to compute on every call).
_NP_CODES: dict = {}
_np: Any = None
_TORCH_TYPES: set = set()  # tensor classes seen (torch.Tensor, nn.Parameter, subclasses)
_torch: Any = None  # (dtype codes, torch.strided, _increment_version), once torch is seen
# Scheme text → compiled handle (``_native.compile``), so a small fill does not re-parse it.
_SCHEMES: dict = {}
_MAX_SCHEMES = 4096
# (layout, convention) → the native rule bits.
_RULES = {("out_in", "true"): 0, ("in_out", "true"): 1, ("out_in", "framework"): 2,
          ("in_out", "framework"): 3, ("out_in", "pytorch"): 2, ("in_out", "pytorch"): 3}


def _numpy() -> Any:
    global _np
    if _np is None:
        import numpy

        _np = numpy
        _NP_CODES.update({numpy.float32: 0, numpy.float64: 1, numpy.float16: 2})
    return _np


def _compiled(scheme: str) -> Optional[int]:
    """The scheme's compiled handle, or None once the cache is full (the caller then passes
    the text). Raises UsageError for a scheme that does not parse."""
    h = _SCHEMES.get(scheme)
    if h is None and isinstance(scheme, str) and len(_SCHEMES) < _MAX_SCHEMES:
        h = _SCHEMES[scheme] = _native.compile(scheme)
    return h


def _torch_info() -> Any:
    global _torch
    if _torch is None:
        import torch

        codes = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
        # The C function under torch.autograd.graph.increment_version, called with a tuple
        # (given a bare tensor it would iterate over its elements).
        inc = getattr(torch._C, "_increment_version", None)
        _torch = (codes, torch.strided, inc)
    return _torch


def _key(key: Union[str, int]) -> int:
    if isinstance(key, str):
        return key_of(key)
    if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < _U64:
        return key
    raise UsageError(f"key: expected a tensor name (str) or an int in [0, 2**64), got {key!r}")


def _seed(seed: int) -> int:
    if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < _U64:
        return seed
    raise UsageError(f"seed: expected an int in [0, 2**64), got {seed!r}")


def _buffer(x: Any, what: str) -> Tuple[Any, int, Tuple[int, ...]]:
    """(buffer, dtype code, shape) of a writable, contiguous CPU buffer: the buffer is a torch
    tensor's address (int) or the ndarray itself (the native side reads its data pointer).
    The dtype code indexes ``_DT_NAMES``."""
    cls = type(x)
    if cls in _TORCH_TYPES or (cls.__module__.startswith("torch") and hasattr(x, "data_ptr")
                               and not _TORCH_TYPES.add(cls)):
        if not x.is_cpu:
            raise UsageError(f"{what}: a {x.device.type} tensor; initforge fills CPU tensors "
                             "(fill on CPU, then move it)")
        codes, strided, _ = _torch_info()
        if x.layout is not strided:
            raise UsageError(f"{what}: a {x.layout} tensor; only dense (strided) tensors")
        dt = codes.get(x.dtype)
        if dt is None:
            raise UsageError(f"{what}: dtype {x.dtype} is not float32, float64, float16 or "
                             "bfloat16")
        if not x.is_contiguous():
            raise UsageError(f"{what}: the tensor is not contiguous (strides {x.stride()}); "
                             "fill a contiguous tensor and copy it in")
        # Real dtypes cannot carry the conjugate bit; the negative bit they can (_neg_view).
        if x.is_neg():
            raise UsageError(f"{what}: a lazily negated view")
        return x.data_ptr(), dt, tuple(x.shape)
    np = _numpy()
    if isinstance(x, np.ndarray):
        dt = x.dtype
        code = _NP_CODES.get(dt.type)
        if code is None and dt.name in _NUMPY_DTYPES:  # first bfloat16 (ml_dtypes) seen
            code = _NP_CODES[dt.type] = _DT_NAMES.index(dt.name)
        if code is None:
            raise UsageError(f"{what}: dtype {dt} is not float32, float64, float16 or "
                             "bfloat16 (ml_dtypes)")
        if not dt.isnative:
            raise UsageError(f"{what}: dtype {dt.str} is not in the machine's byte order")
        flags = x.flags
        if not flags.carray:  # C-contiguous, aligned and writeable: say which one failed
            if not flags.c_contiguous:
                raise UsageError(f"{what}: the array is not C-contiguous (strides {x.strides}); "
                                 "use np.ascontiguousarray and copy back")
            if not flags.writeable:
                raise UsageError(f"{what}: the array is read-only")
            raise UsageError(f"{what}: the array's data is not aligned to its dtype")
        return x, code, x.shape
    raise UsageError(f"{what}: expected a numpy array or a CPU torch tensor, got {cls.__name__}")


def _address(buf: Any) -> int:
    """The address of what :func:`_buffer` returned (an int already, or an ndarray)."""
    return buf if isinstance(buf, int) else buf.__array_interface__["data"][0]


def _prod(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _bump_version(x: Any) -> None:
    # We wrote the tensor's memory directly; tell autograd, as an in-place op would, so a
    # tensor saved for backward is not silently reused.
    if _torch is not None and type(x).__module__.startswith("torch"):
        inc = _torch[2]
        if inc is not None:
            inc((x,))


def init_(
    x: Any,
    scheme: str,
    *,
    seed: int,
    key: Union[str, int],
    fans: Optional[Tuple[int, int]] = None,
    layout: str = "out_in",
    groups: int = 1,
    transposed: bool = False,
    convention: str = "true",
) -> Any:
    """Fill ``x`` (numpy array or CPU torch tensor; float32, float64, float16, bfloat16)
    in place with ``scheme`` and return it.

    The values are those init-core writes for (seed, key, scheme, fans, shape, dtype): the
    same bits as Rust, the derive and the ``onnx-reinit`` CLI. ``key`` is the tensor's name
    (hashed with :func:`key_of`) or a 64-bit int. Fan-scaled schemes take ``fans`` =
    (fan_in, fan_out), or compute them from ``x.shape``: with ``layout="out_in"`` (PyTorch)
    a weight ``[out, in/groups, k…]`` has fan_in = in/groups·∏k and fan_out = out/groups·∏k
    (``convention="true"``, real connection counts) or PyTorch's
    ``_calculate_fan_in_and_fan_out`` (``convention="framework"``); ``transposed=True``
    reads a ConvTranspose weight ``[in, out/groups, k…]``; ``layout="in_out"`` is Keras/JAX.

    Variances, with fan = fan_in (or fan_out with ``mode=fan_out``) and gain g:
    he: g²/fan (g² = 2 for relu), glorot: 2/(fan_in + fan_out), lecun: 1/fan; ``_uniform``
    draws U(±√(3·var)), ``_normal`` N(0, var), ``_truncated_normal`` N(0, var/0.8796²) cut
    at ±2 of its std. Zero-copy; large fills release the GIL and use every core.
    """
    buf, dt, shape = _buffer(x, "init_")
    if type(seed) is not int or not 0 <= seed < _U64:
        seed = _seed(seed)
    if type(key) is not int or not 0 <= key < _U64:
        key = _key(key)
    h = _SCHEMES.get(scheme)
    if h is None:
        h = _compiled(scheme)
    rule = _RULES.get((layout, convention))
    if h is None or rule is None:  # cache full, or a bad layout/convention (the slow path says)
        _native.fill(_address(buf), _DT_NAMES[dt], _prod(shape), list(shape), scheme, seed,
                     key, fans, None, layout, groups, transposed, convention)
    else:
        _native.fill_whole(buf, dt, shape, h, seed, key, fans, rule, groups, transposed)
    if type(buf) is int:  # a torch tensor: bump its version as an in-place op would
        inc = _torch[2]
        if inc is not None:
            inc((x,))
    return x


def _ranges(
    global_shape: Sequence[int],
    local_shape: Tuple[int, ...],
    offset: Optional[Sequence[int]],
    ranges: Optional[Sequence[Union[Tuple[int, int], slice, range]]],
) -> list:
    gs = [int(d) for d in global_shape]
    if (offset is None) == (ranges is None):
        raise UsageError("init_shard_: give exactly one of offset= and ranges=")
    if offset is not None:
        if len(offset) != len(gs) or len(local_shape) != len(gs):
            raise UsageError(f"init_shard_: offset {tuple(offset)} and the shard's shape "
                             f"{local_shape} must have the rank of global_shape {tuple(gs)}")
        out = [(int(o), int(o) + int(n)) for o, n in zip(offset, local_shape)]
    else:
        out = []
        for r in ranges:  # type: ignore[union-attr]
            if isinstance(r, (slice, range)):
                if r.step not in (None, 1):
                    raise UsageError(f"init_shard_: range {r} has a step; shards are boxes")
                out.append((0 if r.start is None else int(r.start), int(r.stop)))
            else:
                a, b = r
                out.append((int(a), int(b)))
        if len(out) != len(gs):
            raise UsageError(f"init_shard_: {len(out)} ranges for global_shape {tuple(gs)}")
        want = tuple(b - a for a, b in out)
        if len(local_shape) == len(gs) and tuple(local_shape) != want:
            raise UsageError(f"init_shard_: the shard has shape {local_shape} but the ranges "
                             f"{out} describe {want}")
    for d, ((a, b), n) in enumerate(zip(out, gs)):
        if not 0 <= a <= b <= n:
            raise UsageError(f"init_shard_: range {a}..{b} of dimension {d} is outside "
                             f"0..{n} (global_shape {tuple(gs)})")
    return out


def init_shard_(
    local: Any,
    scheme: str,
    *,
    global_shape: Sequence[int],
    seed: int,
    key: Union[str, int],
    offset: Optional[Sequence[int]] = None,
    ranges: Optional[Sequence[Union[Tuple[int, int], slice, range]]] = None,
    fans: Optional[Tuple[int, int]] = None,
    layout: str = "out_in",
    groups: int = 1,
    transposed: bool = False,
    convention: str = "true",
) -> Any:
    """Fill ``local``, one shard of a tensor of ``global_shape``, with exactly the values
    :func:`init_` writes at those positions of the whole tensor, and return it.

    The shard is a box: ``offset`` gives its first index in each dimension (its extent is
    ``local.shape``), or ``ranges`` gives (start, end) / ``slice`` per dimension. Row blocks,
    column blocks and ``Shard(d)`` placements are boxes, so any world size and mesh gives the
    same gathered tensor. Fans come from ``global_shape``. Orthogonal (a QR of the whole
    matrix) raises UsageError; eye and dirac shard exactly. Element i of the tensor depends
    only on (seed, key, chunk ⌊i/65536⌋ and its prefix), so a shard costs its own elements
    plus at most the prefix of each chunk it enters midway.
    """
    buf, dt, shape = _buffer(local, "init_shard_")
    r = _ranges(global_shape, shape, offset, ranges)
    _native.fill(_address(buf), _DT_NAMES[dt], _prod(shape), [int(d) for d in global_shape],
                 scheme, _seed(seed), _key(key), fans, r, layout, groups, transposed, convention)
    _bump_version(local)
    return local


def fans(
    shape: Sequence[int],
    *,
    layout: str = "out_in",
    groups: int = 1,
    transposed: bool = False,
    convention: str = "true",
) -> Tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape`` (see :func:`init_` for the rules)."""
    return _native.fans([int(d) for d in shape], layout, groups, transposed, convention)


def expected_std(scheme: str, shape: Sequence[int],
                 fans: Optional[Tuple[int, int]] = None) -> float:
    """The standard deviation ``scheme`` gives a tensor of ``shape`` with ``fans``."""
    return _native.expected_std(scheme, [int(d) for d in shape], fans)


def canonical(scheme: str) -> str:
    """The scheme's canonical spelling; raises UsageError (with suggestions) if invalid."""
    return _native.canonical(scheme)


def _fspath(p: Union[str, "_os.PathLike[str]"]) -> str:
    return _os.fspath(p)
