#!/usr/bin/env bash
# The Python suite: creates a venv (python/.venv, or $INITFORGE_VENV), installs the test
# dependencies from PyPI (torch's CPU wheel included), builds and installs the initforge wheel
# from this directory with pip (maturin as the build backend), and runs pytest.
# Works on a fresh machine with python3 (venv module) and the repository's Rust toolchain.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${INITFORGE_VENV:-$here/.venv}"
py="${PYTHON:-python3}"

start=$(date +%s)
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" || {
        echo "python/test.sh: '$py -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
        exit 1
    }
fi
"$venv/bin/python" -m pip install -q --upgrade pip
# torch from PyPI: the CPU build via PyTorch's index is not reachable everywhere; PyPI's wheel
# runs on CPU as well.
"$venv/bin/python" -m pip install -q "maturin>=1.5,<2" numpy ml_dtypes onnx onnxruntime torch pytest
deps=$(date +%s)
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$here"
built=$(date +%s)
cd "$here/tests"
status=0
PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest -q || status=$?
end=$(date +%s)
echo "python/test.sh: venv + dependencies $((deps - start)) s, wheel build $((built - deps)) s, pytest $((end - built)) s"
exit $status
