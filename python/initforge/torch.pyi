from typing import Any, Dict, List, Mapping, Optional, Tuple

from torch import nn

def dtensor_boxes(dt: Any) -> List[Tuple[List[Tuple[int, int]], List[Tuple[int, int]]]]:
    """The boxes of the global tensor this rank's shard holds, as (global ranges, local
    ranges); several for a ``_StridedShard`` (up to its split_factor runs per dimension)."""

def dtensor_ranges(dt: Any) -> List[Tuple[int, int]]:
    """The (start, end) box of the global tensor this rank's local shard holds; UsageError
    if the shard is several boxes (``dtensor_boxes``)."""

def init_dtensor_(dt: Any, scheme: str, *, seed: int, key: Any, **kw: Any) -> Any:
    """Fill this rank's shard with the full tensor's values there (any world size and mesh;
    Shard, Replicate, _StridedShard)."""

def init_dtensor_blocks_(dt: Any, scheme: str, blocks: int, *, seed: int, key: str,
                         **kw: Any) -> Any:
    """Fill ``blocks`` equal row blocks of a DTensor, block b as an [rows/blocks, …] tensor
    keyed ``f"{key}#{b}"`` (gates, packed q/k/v), on every rank's shard."""

def init_module_(
    model: nn.Module,
    rules: Optional[Mapping[str, str]] = ...,
    *,
    seed: int,
    defaults: Optional[Mapping[str, str]] = ...,
    pytorch: bool = ...,
    convention: str = ...,
    warn: bool = ...,
) -> List[Dict[str, Any]]:
    """Re-initialize parameters by module type and glob rules, keyed by parameter name."""
