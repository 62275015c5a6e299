"""initforge.torch: init_module_ against the layers' own shapes, PyTorch parity, and sharded
initialization with torch.distributed (gloo, localhost) for world sizes 1, 2 and 4."""
import math
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import initforge
import initforge.torch as ift
from model_defs import dist_model, tp_model


def ref(shape, scheme, seed, key, fans=None):
    x = torch.zeros(shape)
    initforge.init_(x, scheme, seed=seed, key=key, fans=fans)
    return x


def test_init_module_uses_true_fans_from_the_layer_definition():
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Linear(30, 20),                          # fans (30, 20)
        nn.Conv2d(8, 16, 3, groups=4),              # in 8/4*9 = 18, out 16/4*9 = 36
        nn.ConvTranspose2d(8, 4, (3, 2), groups=2),  # in 8/2*6 = 24, out 4/2*6 = 12
        nn.Embedding(50, 12),                       # (1, 12)
        nn.LayerNorm(5),
        nn.MultiheadAttention(16, 2),               # in_proj per q/k/v part: (16, 16)
        nn.GRU(6, 10),                              # W per gate (6, 10), R per gate (10, 10)
    )
    rep = ift.init_module_(m, seed=7)
    assert not [r for r in rep if "skipped" in r]
    truth = {"0.weight": (30, 20), "1.weight": (18, 36), "2.weight": (24, 12)}
    for name, f in truth.items():
        p = m.get_parameter(name)
        assert torch.equal(p, ref(p.shape, "he_uniform", 7, name, fans=f)), name
        assert torch.equal(m.get_parameter(name.replace("weight", "bias")),
                           torch.zeros_like(m.get_parameter(name.replace("weight", "bias"))))
    assert torch.equal(m[3].weight, ref((50, 12), "normal(0, 1)", 7, "3.weight"))
    assert torch.equal(m[4].weight, torch.ones(5)) and torch.equal(m[4].bias, torch.zeros(5))
    w = m[5].in_proj_weight
    for b in range(3):
        assert torch.equal(w[b * 16:(b + 1) * 16],
                           ref((16, 16), "he_uniform", 7, f"5.in_proj_weight#{b}", fans=(16, 16)))
    assert torch.equal(m[5].in_proj_bias, torch.zeros(48))
    assert torch.equal(m[5].out_proj.bias, torch.zeros(16))
    assert torch.equal(m[5].out_proj.weight,
                       ref((16, 16), "he_uniform", 7, "5.out_proj.weight", fans=(16, 16)))
    for b in range(3):
        assert torch.equal(m[6].weight_ih_l0[b * 10:(b + 1) * 10],
                           ref((10, 6), "glorot_uniform", 7, f"6.weight_ih_l0#{b}", fans=(6, 10)))
        r = m[6].weight_hh_l0[b * 10:(b + 1) * 10].double()
        assert torch.allclose(r @ r.T, torch.eye(10, dtype=torch.float64), atol=1e-5)


def test_rules_win_and_unknown_parameters_are_reported():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.zeros(4))
            self.fc = nn.Linear(4, 4)

    m = Odd()
    with pytest.warns(UserWarning, match="left 1 parameter.*scale"):
        rep = ift.init_module_(m, seed=1)
    assert {"name": "scale"}.items() <= rep[0].items() and "skipped" in rep[0]
    rep = ift.init_module_(m, {"scale": "constant(0.5)", "fc.*": "normal(0, 0.1)"}, seed=1)
    assert torch.equal(m.scale, torch.full((4,), 0.5))
    assert torch.equal(m.fc.bias, ref((4,), "normal(0, 0.1)", 1, "fc.bias"))
    with pytest.raises(initforge.UsageError, match="scale .4,.*fan"):
        ift.init_module_(m, {"scale": "he_normal"}, seed=1)


def test_pytorch_parity_bounds_follow_torch_fans():
    layers = [nn.Linear(30, 20), nn.Conv2d(8, 16, 3, groups=4),
              nn.ConvTranspose2d(8, 4, 3, groups=2), nn.Conv1d(3, 5, 7)]
    for layer in layers:
        ift.init_module_(layer, seed=3, pytorch=True)
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=√5): gain·√(3/fan_in)
        for p in (layer.weight, layer.bias):
            assert p.abs().max() <= bound
            assert p.abs().max() > 0.8 * bound
    lstm = nn.LSTM(5, 9)
    ift.init_module_(lstm, seed=3, pytorch=True)
    for p in lstm.parameters():
        assert 0.8 / 3 < p.abs().max() <= 1 / 3


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gathered(tmp_path_factory):
    out = {}
    worker = pathlib.Path(__file__).with_name("dist_worker.py")
    for world in (1, 2, 4):
        path = tmp_path_factory.mktemp(f"w{world}") / "full.pt"
        subprocess.run([sys.executable, str(worker), str(world), str(_free_port()), str(path)],
                       check=True, timeout=600)
        out[world] = torch.load(path)
    return out


def test_dtensor_and_fsdp2_shards_gather_to_the_same_tensor(gathered):
    one = gathered[1]
    assert torch.equal(one["w0"], ref((37, 1500), "he_truncated_normal", 1234, "w0"))
    assert torch.equal(one["w1"], ref((37, 1500), "he_normal", 1234, "w1"))
    assert torch.equal(one["c2"], ref((8, 6, 5, 5), "glorot_uniform", 1234, "c2"))
    assert torch.equal(one["e"], ref((300, 200), "eye(gain=2)", 1234, "e"))
    assert torch.equal(one["fsdp.0.weight"], ref((65, 33), "he_uniform", 99, "0.weight"))
    assert torch.equal(one["fsdp.2.weight"],
                       ref((30, 13, 3), "he_uniform", 99, "2.weight", fans=(39, 18)))
    assert torch.equal(one["s0"], ref((37, 24), "he_normal", 1234, "s0"))
    assert torch.equal(one["s1"], ref((10, 45), "glorot_uniform", 1234, "s1"))
    assert torch.equal(one["s2"], ref((36, 12), "orthogonal", 1234, "s2"))
    # Per-gate and per-part blocks: sharded by rows (FSDP2), columns and strided rows, the
    # gathered model equals the one init_module_ gives unsharded.
    whole = dist_model()
    ift.init_module_(whole, seed=99, rules={"0.bias": "uniform(-1, 1)"})
    for tag in ("fsdp", "col", "str"):
        for name, p in whole.named_parameters():
            assert torch.equal(one[f"{tag}.{name}"], p), (tag, name)
    whole = tp_model()
    ift.init_module_(whole, seed=5)
    for name, p in whole.named_parameters():
        assert torch.equal(one[f"tp.{name}"], p), name
    for world in (2, 4):
        assert one.keys() == gathered[world].keys()
        for k, v in one.items():
            assert torch.equal(v.view(torch.int32) if v.dtype == torch.float32 else v,
                               gathered[world][k].view(torch.int32)
                               if v.dtype == torch.float32 else gathered[world][k]), (world, k)


class _Mesh:
    def __init__(self, shape, coord):
        self.shape, self._coord = tuple(shape), list(coord)

    def get_coordinate(self):
        return self._coord

    def size(self, d):
        return self.shape[d]


class _FakeDTensor:
    """What dtensor_boxes reads of a DTensor: shape, mesh, placements, the local shard."""

    def __init__(self, shape, mesh, placements, local_shape):
        self.shape, self.device_mesh, self.placements = torch.Size(shape), mesh, placements
        self._local = torch.empty(local_shape)

    def to_local(self):
        return self._local


def test_strided_shard_boxes_hold_the_indices_torch_assigns():
    from torch.distributed.tensor import Shard
    from torch.distributed.tensor.placement_types import _StridedShard, _StridedShardOffsetMode

    for length in (0, 1, 7, 12, 37, 64):
        for n in (1, 2, 3, 4):
            for sf in (1, 2, 3, 5):
                p = _StridedShard(0, split_factor=sf)
                for rank in range(n):
                    size, idx = p.local_shard_size_and_offset(
                        length, n, rank, offset_mode=_StridedShardOffsetMode.ALL)
                    fake = _FakeDTensor((length, 3), _Mesh((n,), (rank,)), [p], (size, 3))
                    got = [i for g, _ in ift.dtensor_boxes(fake) for i in range(*g[0])]
                    assert got == (list(idx) if size else []), (length, n, sf, rank)
                    for g, loc in ift.dtensor_boxes(fake):
                        assert g[1] == loc[1] == (0, 3)
                    assert len(ift.dtensor_boxes(fake)) <= sf
            for rank in range(n):
                size, off = Shard.local_shard_size_and_offset(length, n, rank)
                fake = _FakeDTensor((3, length), _Mesh((n,), (rank,)), [Shard(1)], (3, size))
                boxes = ift.dtensor_boxes(fake)
                assert [b[0][1] for b in boxes] == ([(off, off + size)] if size else [])
                assert ift.dtensor_ranges(fake) == [(0, 3), (off, off + size) if size else (0, 0)]


def test_dtensor_boxes_reject_what_is_not_a_box():
    from torch.distributed.tensor import Partial, Shard
    from torch.distributed.tensor.placement_types import _StridedShard

    fake = _FakeDTensor((8, 4), _Mesh((2,), (0,)), [Partial()], (8, 4))
    with pytest.raises(initforge.UsageError, match="Partial placement"):
        ift.dtensor_boxes(fake)
    fake = _FakeDTensor((8, 4), _Mesh((2,), (0,)), [Shard(0)], (8, 4))
    with pytest.raises(initforge.UsageError, match=r"local shard \(8, 4\) is not the \(4, 4\)"):
        ift.dtensor_boxes(fake)
    fake = _FakeDTensor((12, 4), _Mesh((2,), (1,)), [_StridedShard(0, split_factor=2)], (6, 4))
    assert ift.dtensor_boxes(fake) == [([(3, 6), (0, 4)], [(0, 3), (0, 4)]),
                                       ([(9, 12), (0, 4)], [(3, 6), (0, 4)])]
    with pytest.raises(initforge.UsageError, match="is 2 boxes, not one; use dtensor_boxes"):
        ift.dtensor_ranges(fake)
    fake = _FakeDTensor((8, 4), _Mesh((2,), (0,)), ["odd"], (8, 4))
    with pytest.raises(initforge.UsageError, match="placement 'odd' on mesh dimension 0"):
        ift.init_dtensor_(fake, "he_normal", seed=1, key="w")
