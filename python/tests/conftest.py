import json
import math
import pathlib

import numpy as np
import pytest

DATA = pathlib.Path(__file__).parent / "data"
REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pins():
    return json.loads((DATA / "pins.json").read_text())


def normal_cdf(x):
    x = np.asarray(x, dtype=np.float64)
    erf = np.frompyfunc(math.erf, 1, 1)
    return 0.5 * (1.0 + np.asarray(erf(x / math.sqrt(2.0)), dtype=np.float64))


def ks_statistic(sample, cdf):
    """Kolmogorov–Smirnov D = sup |F_n(x) − F(x)| of a sample against an exact CDF."""
    x = np.sort(np.asarray(sample, dtype=np.float64))
    n = x.size
    f = cdf(x)
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - f), np.max(f - (i - 1) / n)))
