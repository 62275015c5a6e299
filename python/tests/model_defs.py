"""The model dist_worker.py shards and test_torch.py initializes whole, so both build it alike."""
import torch
from torch import nn


def dist_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(33, 65), nn.ReLU(),
        nn.Conv1d(65, 30, 3, groups=5),
        nn.LayerNorm(7),
        nn.LSTM(6, 9),  # 4 gates of 9 rows: weight_ih (36, 6), weight_hh (36, 9)
        nn.MultiheadAttention(12, 3),  # in_proj_weight (36, 12): q, k, v of 12 rows
        nn.GRU(5, 7, bias=False),  # 3 gates of 7 rows: 21 rows, uneven on 2 and 4 ranks
    )


def tp_model() -> nn.Module:
    """Column- then row-parallel Linears: under FSDP2 + tensor parallel on a 2-D mesh the first
    weight becomes (_StridedShard(0), Shard(0)), the second (Shard(0), Shard(1))."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 36), nn.ReLU(), nn.Linear(36, 10))
