from typing import Any, List, Optional, Sequence, Tuple

CHUNK: int
DEFAULT_SEED: int

class Error(Exception):
    kind: str
    exit_code: int

class UsageError(Error): ...
class ModelError(Error): ...
class CancelledError(Error): ...

def key_of(name: str) -> int: ...
def canonical(scheme: str) -> str: ...
def needs_fans(scheme: str) -> bool: ...
def expected_std(
    scheme: str, shape: Sequence[int], fans: Optional[Tuple[int, int]] = ...
) -> float: ...
def fans(
    shape: Sequence[int],
    layout: str = ...,
    groups: int = ...,
    transposed: bool = ...,
    convention: str = ...,
) -> Tuple[int, int]: ...
def fill(
    ptr: int,
    dtype: str,
    len: int,
    shape: Sequence[int],
    scheme: str,
    seed: int,
    key: int,
    fans: Optional[Tuple[int, int]] = ...,
    ranges: Optional[Sequence[Tuple[int, int]]] = ...,
    layout: str = ...,
    groups: int = ...,
    transposed: bool = ...,
    convention: str = ...,
) -> None: ...
def compile(scheme: str) -> int: ...
def fill_whole(
    buf: Any,
    dtype: int,
    shape: Sequence[int],
    handle: int,
    seed: int,
    key: int,
    fans: Optional[Tuple[int, int]],
    rule: int,
    groups: int,
    transposed: bool,
) -> None: ...
def reinit(
    model: str,
    out: Optional[str],
    rules_: List[Tuple[str, str]],
    name_rules: List[str],
    seed: int,
    dry_run: bool,
    in_place: bool,
    force: bool,
    compat_: str,
    preset: Optional[str] = ...,
) -> str: ...
def inspect(model: str, compat_: str, too_small: float, too_large: float) -> str: ...
def cli_main(argv: List[str]) -> int: ...
