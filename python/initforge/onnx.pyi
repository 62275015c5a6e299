import os
from typing import Any, Dict, Mapping, Optional, Sequence, Union

DEFAULT_SEED: int
PathLike = Union[str, "os.PathLike[str]"]

def reinit(
    model: PathLike,
    out: Optional[PathLike] = ...,
    *,
    rules: Optional[Mapping[str, str]] = ...,
    name_rules: Sequence[str] = ...,
    seed: int = ...,
    dry_run: bool = ...,
    in_place: bool = ...,
    force: bool = ...,
    compat: str = ...,
    preset: Optional[str] = ...,
) -> Dict[str, Any]:
    """Re-initialize an ONNX model's weights (payload bytes only); the --json document."""

def inspect(
    model: PathLike,
    *,
    compat: str = ...,
    too_small: float = ...,
    too_large: float = ...,
) -> Dict[str, Any]:
    """onnx-reinit inspect --json (weight diagnosis, no forward pass)."""
