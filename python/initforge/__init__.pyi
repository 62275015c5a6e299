"""Type stubs of initforge (see the module docstrings for formulas and contracts)."""

import os
from typing import Any, Optional, Sequence, Tuple, Union

CHUNK: int
DEFAULT_SEED: int

class Error(Exception):
    kind: str
    exit_code: int

class UsageError(Error): ...
class ModelError(Error): ...
class CancelledError(Error): ...

Range = Union[Tuple[int, int], slice, range]

def key_of(name: str) -> int:
    """FNV-1a of the UTF-8 name, finalised with SplitMix64's mixer (init-core's key_of)."""

def init_(
    x: Any,
    scheme: str,
    *,
    seed: int,
    key: Union[str, int],
    fans: Optional[Tuple[int, int]] = ...,
    layout: str = ...,
    groups: int = ...,
    transposed: bool = ...,
    convention: str = ...,
) -> Any:
    """Fill a numpy array or CPU torch tensor in place (float32/64/16, bfloat16): he var
    g²/fan, glorot 2/(fan_in + fan_out), lecun 1/fan; uniform U(±√(3·var)), normal
    N(0, var), truncated N(0, var/0.8796²) cut at ±2σ. Returns x."""

def init_shard_(
    local: Any,
    scheme: str,
    *,
    global_shape: Sequence[int],
    seed: int,
    key: Union[str, int],
    offset: Optional[Sequence[int]] = ...,
    ranges: Optional[Sequence[Range]] = ...,
    fans: Optional[Tuple[int, int]] = ...,
    layout: str = ...,
    groups: int = ...,
    transposed: bool = ...,
    convention: str = ...,
) -> Any:
    """Fill one box of a tensor of global_shape with the whole tensor's values there."""

def fans(
    shape: Sequence[int],
    *,
    layout: str = ...,
    groups: int = ...,
    transposed: bool = ...,
    convention: str = ...,
) -> Tuple[int, int]:
    """(fan_in, fan_out): [out, in/g, k…] → (in/g·∏k, out/g·∏k) with convention="true"."""

def expected_std(
    scheme: str, shape: Sequence[int], fans: Optional[Tuple[int, int]] = ...
) -> float: ...
def canonical(scheme: str) -> str: ...
def _key(key: Union[str, int]) -> int: ...
def _seed(seed: int) -> int: ...
