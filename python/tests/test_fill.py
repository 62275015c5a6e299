"""init_ and init_shard_: bits against init-core's table, distributions, shards, errors."""
import math

import ml_dtypes
import numpy as np
import pytest
import torch

import initforge
from conftest import ks_statistic, normal_cdf

NP = {"float32": np.float32, "float64": np.float64, "float16": np.float16,
      "bfloat16": ml_dtypes.bfloat16}
UINT = {"float32": np.uint32, "float64": np.uint64, "float16": np.uint16,
        "bfloat16": np.uint16}
TORCH = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
         "bfloat16": torch.bfloat16}
TORCH_INT = {"float32": torch.int32, "float64": torch.int64, "float16": torch.int16,
             "bfloat16": torch.int16}


def bits_np(x, dtype):
    return x.reshape(-1).view(UINT[dtype])


def bits_torch(t, dtype):
    return t.reshape(-1).view(TORCH_INT[dtype]).numpy().view(UINT[dtype])


def test_bits_equal_init_core_table(pins):
    at = np.array(pins["at"])
    shape = tuple(pins["shape"])
    assert len(pins["entries"]) >= 30
    for e in pins["entries"]:
        want = np.array(e["bits"], dtype=UINT[e["dtype"]])
        x = np.zeros(shape, NP[e["dtype"]])
        initforge.init_(x, e["scheme"], seed=e["seed"], key=e["key"])
        assert np.array_equal(bits_np(x, e["dtype"])[at], want), e
        t = torch.zeros(shape, dtype=TORCH[e["dtype"]])
        initforge.init_(t, e["scheme"], seed=e["seed"], key=e["key_u64"])
        assert np.array_equal(bits_torch(t, e["dtype"])[at], want), e
        assert initforge.key_of(e["key"]) == e["key_u64"]


def test_init_returns_its_argument_and_is_deterministic():
    a = np.zeros((300, 7), np.float32)
    assert initforge.init_(a, "he_normal", seed=3, key="w") is a
    b = np.zeros((300, 7), np.float32)
    initforge.init_(b, "he_normal", seed=3, key="w")
    assert np.array_equal(a, b)
    initforge.init_(b, "he_normal", seed=4, key="w")
    assert not np.array_equal(a, b)
    initforge.init_(b, "he_normal", seed=3, key="v")
    assert not np.array_equal(a, b)


def test_fans_from_shape_and_explicit_fans():
    # he_normal std = sqrt(2 / fan_in); fan_in of [out, in/g, kh, kw] = in/g*kh*kw.
    w = np.zeros((64, 8, 3, 3), np.float64)
    initforge.init_(w, "he_normal", seed=0, key="c", groups=4)
    assert initforge.fans((64, 8, 3, 3), groups=4) == (72, 144)
    assert initforge.fans((64, 8, 3, 3), groups=4, convention="framework") == (72, 576)
    # ConvTranspose [in=8, out/g=16, k=3], g=2: in = 8/2·3, out = 16·3.
    assert initforge.fans((8, 16, 3), transposed=True, groups=2) == (12, 48)
    ex = np.zeros_like(w)
    initforge.init_(ex, "he_normal", seed=0, key="c", fans=(72, 144))
    assert np.array_equal(w, ex)
    assert abs(initforge.expected_std("he_normal", (64, 8, 3, 3), (72, 144))
               - math.sqrt(2 / 72)) < 1e-15


@pytest.mark.parametrize("scheme,cdf", [
    ("he_normal", lambda x: normal_cdf(x / math.sqrt(2 / 500))),
    ("glorot_uniform", lambda x: np.clip((x + math.sqrt(6 / 900)) / (2 * math.sqrt(6 / 900)),
                                         0, 1)),
    ("he_truncated_normal", None),
    ("truncated_normal(0, 1, 0.1, 0.3)", None),
])
def test_ks(scheme, cdf):
    # fans (500, 400); n = 40000 > one chunk boundary; D's 0.1% critical value 1.95/sqrt(n).
    n = 40_000
    x = np.zeros(n, np.float64)
    initforge.init_(x, scheme, seed=11, key="ks", fans=(500, 400))
    if cdf is None:
        if scheme == "he_truncated_normal":
            s = math.sqrt(2 / 500) / 0.87962566103423978
            lo, hi = -2 * s, 2 * s
        else:
            s, lo, hi = 1.0, 0.1, 0.3
        a, b = normal_cdf(lo / s), normal_cdf(hi / s)
        cdf = lambda v: (normal_cdf(v / s) - a) / (b - a)  # noqa: E731
        assert lo <= x.min() and x.max() <= hi
    d = ks_statistic(x, cdf)
    assert d < 1.95 / math.sqrt(n), (scheme, d)


def test_ks_detects_a_wrong_distribution():
    # The check above can fail: the same sample against a 10% wider normal is rejected.
    n = 40_000
    x = np.zeros(n, np.float64)
    initforge.init_(x, "he_normal", seed=11, key="ks", fans=(500, 400))
    d = ks_statistic(x, lambda v: normal_cdf(v / (1.1 * math.sqrt(2 / 500))))
    assert d > 1.95 / math.sqrt(n)


def _boxes(rng, shape):
    out = []
    for _ in range(4):
        r = []
        for n in shape:
            a, b = sorted(rng.integers(0, n + 1, size=2))
            r.append((int(a), int(b)))
        out.append(r)
    return out


@pytest.mark.parametrize("dtype", list(NP))
def test_shards_equal_the_whole_tensor(dtype):
    rng = np.random.default_rng(5)
    for scheme in ["he_normal", "glorot_uniform", "he_truncated_normal", "eye", "uniform(-1, 1)"]:
        for shape in [(3, 50_000), (40, 7, 900), (130_001,), (5, 6, 70, 11)]:
            if scheme == "eye" and len(shape) < 2:
                continue
            whole = np.zeros(shape, NP[dtype])
            initforge.init_(whole, scheme, seed=9, key="s", fans=(300, 200))
            for box in _boxes(rng, shape):
                local = np.zeros([b - a for a, b in box], NP[dtype])
                initforge.init_shard_(local, scheme, global_shape=shape, ranges=box, seed=9,
                                      key="s", fans=(300, 200))
                want = whole[tuple(slice(a, b) for a, b in box)]
                assert np.array_equal(bits_np(local, dtype), bits_np(want, dtype)), \
                    (scheme, shape, box)
            # Every Shard(d) of a 3-way split, through offset= on torch tensors.
            t_whole = torch.from_numpy(whole.astype(np.float32)) if dtype == "bfloat16" else None
            for d in range(len(shape)):
                for part in torch.arange(shape[d]).chunk(3):
                    if part.numel() == 0:
                        continue
                    lshape = list(shape)
                    lshape[d] = part.numel()
                    off = [0] * len(shape)
                    off[d] = int(part[0])
                    local = torch.zeros(lshape, dtype=TORCH[dtype])
                    initforge.init_shard_(local, scheme, global_shape=shape, offset=off,
                                          seed=9, key="s", fans=(300, 200))
                    sl = [slice(None)] * len(shape)
                    sl[d] = slice(off[d], off[d] + part.numel())
                    assert np.array_equal(bits_torch(local, dtype),
                                          bits_np(np.ascontiguousarray(whole[tuple(sl)]), dtype))
            del t_whole


def test_slices_as_ranges():
    whole = np.zeros((10, 20), np.float32)
    initforge.init_(whole, "he_normal", seed=1, key="k")
    local = np.zeros((4, 5), np.float32)
    initforge.init_shard_(local, "he_normal", global_shape=(10, 20),
                          ranges=[slice(2, 6), range(15, 20)], seed=1, key="k")
    assert np.array_equal(local, whole[2:6, 15:20])


def test_bad_inputs_raise_usage_errors():
    E = initforge.UsageError
    x = np.zeros((4, 6), np.float32)
    with pytest.raises(E, match="not C-contiguous"):
        initforge.init_(x.T, "he_normal", seed=0, key="w")
    with pytest.raises(E, match="not contiguous"):
        initforge.init_(torch.zeros(4, 6).t(), "he_normal", seed=0, key="w")
    with pytest.raises(E, match="dtype int32"):
        initforge.init_(np.zeros(4, np.int32), "zeros", seed=0, key="w")
    with pytest.raises(E, match="torch.int64"):
        initforge.init_(torch.zeros(4, dtype=torch.int64), "zeros", seed=0, key="w")
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(E, match="read-only"):
        initforge.init_(ro, "zeros", seed=0, key="w")
    with pytest.raises(E, match="did you mean `he_normal`"):
        initforge.init_(x, "he_nromal", seed=0, key="w")
    with pytest.raises(E, match="expected a numpy array or a CPU torch tensor, got list"):
        initforge.init_([1.0], "zeros", seed=0, key="w")
    with pytest.raises(E, match="seed"):
        initforge.init_(x, "zeros", seed=-1, key="w")
    with pytest.raises(E, match="key"):
        initforge.init_(x, "zeros", seed=0, key=2**64)
    with pytest.raises(E, match="fan_in = 0|rank"):
        initforge.init_(np.zeros(5, np.float32), "he_normal", seed=0, key="b")
    with pytest.raises(E, match="orthogonal is computed from the whole matrix"):
        initforge.init_shard_(np.zeros((2, 6), np.float32), "orthogonal", global_shape=(4, 6),
                              offset=(0, 0), seed=0, key="q")
    with pytest.raises(E, match="outside 0..6"):
        initforge.init_shard_(np.zeros((2, 6), np.float32), "zeros", global_shape=(4, 6),
                              offset=(0, 1), seed=0, key="q")
    with pytest.raises(E, match="exactly one of offset= and ranges="):
        initforge.init_shard_(x, "zeros", global_shape=(4, 6), seed=0, key="q")
    with pytest.raises(E, match="describe"):
        initforge.init_shard_(x, "zeros", global_shape=(8, 6), ranges=[(0, 3), (0, 6)],
                              seed=0, key="q")
    assert issubclass(E, initforge.Error) and E.exit_code == 2 and E.kind == "usage"


def test_autograd_sees_the_write():
    p = torch.nn.Parameter(torch.zeros(3, 4))
    v = p._version
    with torch.no_grad():
        initforge.init_(p, "he_normal", seed=0, key="p")
    assert p._version > v


def test_views_are_filled_where_they_point():
    # The native side reads an ndarray's data pointer from the array itself and a tensor's from
    # data_ptr(): a contiguous view that starts inside its base must be filled there and only
    # there, with the bits a fresh array of its shape gets.
    want = np.zeros((4, 5), np.float32)
    initforge.init_(want, "normal(0, 1)", seed=9, key="v")
    base = np.full(30, 7.0, np.float32)
    view = base[7:27].reshape(4, 5)
    initforge.init_(view, "normal(0, 1)", seed=9, key="v")
    assert np.array_equal(view, want)
    assert (base[:7] == 7.0).all() and (base[27:] == 7.0).all()
    tb = torch.full((30,), 7.0)
    tv = tb[3:23].view(4, 5)
    initforge.init_(tv, "normal(0, 1)", seed=9, key="v")
    assert np.array_equal(tv.numpy(), want)
    assert (tb[:3] == 7.0).all() and (tb[23:] == 7.0).all()


def test_the_scheme_cache_changes_nothing():
    # A scheme seen for the first time (parsed) and again (cached handle) gives the same bits,
    # and a bad scheme raises every time rather than being cached.
    a, b = np.zeros(100), np.zeros(100)
    initforge.init_(a, "uniform(-0.25, 0.5)", seed=1, key=2)
    initforge.init_(b, "uniform(-0.25, 0.5)", seed=1, key=2)
    assert np.array_equal(a, b)
    for _ in range(2):
        with pytest.raises(initforge.UsageError, match="he_normall|unknown|suggest|did you"):
            initforge.init_(a, "he_normall", seed=1, key=2)
