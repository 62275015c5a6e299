from typing import Any, Dict, List, Mapping, Optional, Tuple

from torch import nn

def dtensor_ranges(dt: Any) -> List[Tuple[int, int]]:
    """The (start, end) box of the global tensor this rank's local shard holds."""

def init_dtensor_(dt: Any, scheme: str, *, seed: int, key: Any, **kw: Any) -> Any:
    """Fill this rank's shard with the full tensor's values there (any world size)."""

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
