"""initforge.onnx in process against the CLI, error kinds, cancellation, and the relation
between init_module_ and a re-initialized export."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import threading
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import initforge
import initforge.onnx as ifo
import initforge.torch as ift
from conftest import REPO

MLP = REPO / "tests" / "fixtures" / "mlp_relu_tanh.onnx"
CLI = shutil.which("onnx-reinit")


def cli(*args):
    assert CLI, "the wheel installs the onnx-reinit command"
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)


def test_reinit_matches_the_cli_byte_for_byte(tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    doc = ifo.reinit(MLP, a, rules={"relu": "he_normal", "tanh": "glorot"}, seed=77)
    r = cli(MLP, "-o", b, "--relu", "he_normal", "--tanh", "glorot", "--seed", 77, "--json")
    assert r.returncode == 0, r.stderr
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != MLP.read_bytes()
    cli_doc = json.loads(r.stdout)
    assert cli_doc["output"] == str(b) and doc["output"] == str(a)
    cli_doc["output"] = doc["output"]
    # The files written, as absolute paths: each run's own output.
    assert cli_doc["files_written"] == [os.path.abspath(b)]
    assert doc["files_written"] == [os.path.abspath(a)]
    cli_doc["files_written"] = doc["files_written"]
    assert doc == cli_doc


def test_preset_matches_the_cli(tmp_path):
    bert = REPO / "tests" / "fixtures" / "recipes" / "bert.onnx"
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    doc = ifo.reinit(bert, a, preset="bert(initializer_range=0.05)", seed=3)
    r = cli(bert, "-o", b, "--preset", "bert(initializer_range=0.05)", "--seed", 3, "--json")
    assert r.returncode == 0, r.stderr
    assert a.read_bytes() == b.read_bytes()
    cli_doc = json.loads(r.stdout)
    for key in ("output", "files_written"):
        cli_doc[key] = doc[key]
    assert doc == cli_doc
    # Rule flags given explicitly beat the preset, in process as in the CLI.
    c, d = tmp_path / "c.onnx", tmp_path / "d.onnx"
    ifo.reinit(bert, c, preset="bert", rules={"bias": "constant(0.5)", "norm": "constant(2)"},
               seed=3)
    r = cli(bert, "-o", d, "--preset", "bert", "--bias", "constant(0.5)", "--norm",
            "constant(2)", "--seed", 3)
    assert r.returncode == 0, r.stderr
    assert c.read_bytes() == d.read_bytes()
    biases = [numpy_helper.to_array(t) for t in onnx.load(str(c)).graph.initializer
              if t.name.endswith("bias") and "LayerNorm" not in t.name]
    assert biases and all((x == 0.5).all() for x in biases)
    assert "preset" in doc and "0.05" in json.dumps(doc["preset"])
    with pytest.raises(initforge.UsageError, match="preset"):
        ifo.reinit(bert, dry_run=True, preset="bertt")


def test_dry_run_and_inspect_documents_equal_the_cli(tmp_path):
    doc = ifo.reinit(str(MLP), dry_run=True, name_rules=["*.weight=lecun_normal"], seed=5)
    r = cli(MLP, "--dry-run", "--rule", "*.weight=lecun_normal", "--seed", 5, "--json")
    assert doc == json.loads(r.stdout)
    assert all(t.get("scheme", "lecun_normal").startswith("lecun") or t.get("action") != "init"
               for t in doc["tensors"])
    r = cli("inspect", MLP, "--json")
    assert ifo.inspect(pathlib.Path(MLP)) == json.loads(r.stdout)


def test_error_kinds(tmp_path):
    with pytest.raises(initforge.ModelError, match="nope.onnx") as e:
        ifo.reinit(tmp_path / "nope.onnx", dry_run=True)
    assert e.value.exit_code == 1 and e.value.kind == "bad_model"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x0a\xff\xff\xff")
    with pytest.raises(initforge.ModelError, match="bad.onnx"):
        ifo.inspect(bad)
    assert cli(bad).returncode == 1
    with pytest.raises(initforge.UsageError, match='unknown key "rellu"'):
        ifo.reinit(MLP, dry_run=True, rules={"rellu": "he"})
    with pytest.raises(initforge.UsageError, match="did you mean"):
        ifo.reinit(MLP, dry_run=True, rules={"relu": "hee"})
    with pytest.raises(initforge.UsageError, match="exclude each other"):
        ifo.reinit(MLP, tmp_path / "x.onnx", dry_run=True)
    out = tmp_path / "exists.onnx"
    out.write_bytes(b"")
    with pytest.raises(initforge.ModelError, match="exists"):
        ifo.reinit(MLP, out)
    assert cli(MLP, "-o", out).returncode == 1
    assert cli(MLP, "--relu").returncode == 2
    assert initforge.CancelledError.exit_code == 130


def _big_model(path, rows):
    # One Gemm with a rows x 4096 float32 weight: long enough to interrupt.
    w = numpy_helper.from_array(np.zeros((rows, 4096), np.float32), "W")
    g = onnx.helper.make_graph(
        [onnx.helper.make_node("Gemm", ["x", "W"], ["y"], transB=1),
         onnx.helper.make_node("Relu", ["y"], ["z"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4096])],
        [onnx.helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, rows])],
        [w])
    onnx.save(onnx.helper.make_model(g), str(path))


def test_keyboard_interrupt_cancels_and_leaves_nothing(tmp_path):
    # A background job of a non-interactive shell starts with SIGINT ignored, and then Python
    # installs no handler and interrupt_main does nothing: install Python's own for the test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    cancelled = 0
    try:
        # Larger models until one is interrupted mid-rewrite (a fast machine may finish a small
        # one first: then the interrupt lands after it, and the output must be complete).
        for rows in (4096, 8192, 16384):
            d = tmp_path / str(rows)
            d.mkdir()
            src, out = d / "big.onnx", d / "out.onnx"
            _big_model(src, rows)
            before = src.read_bytes()
            # A real SIGINT, as Ctrl-C sends: it also wakes the wait below if the rewrite won
            # the race, so the interrupt is always taken inside the `raises` block.
            timer = threading.Timer(0.001, os.kill, (os.getpid(), signal.SIGINT))
            with pytest.raises(KeyboardInterrupt):
                timer.start()
                ifo.reinit(src, out)
                threading.Event().wait(30)
            timer.join()
            assert src.read_bytes() == before
            if out.exists():  # the rewrite won the race: its output is whole
                assert len(onnx.load(str(out)).graph.initializer[0].raw_data) == rows * 4096 * 4
                continue
            assert sorted(os.listdir(d)) == ["big.onnx"], os.listdir(d)
            cancelled += 1
            break
    finally:
        signal.signal(signal.SIGINT, previous)
    assert cancelled == 1


def test_init_module_then_export_then_reinit_gives_the_same_weights(tmp_path):
    """The relation, documented in initforge.torch: a parameter exported unchanged under its
    own name (Linear → Gemm with transB=1) gets the same bits from init_module_ and from
    onnx.reinit with the same seed, scheme and fans; biases here are zeros either way."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                            torch.nn.Linear(32, 8), torch.nn.Tanh())
    ift.init_module_(m, seed=2024, defaults={"weight": "glorot_uniform"})
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.zeros(1, 16),), str(path), dynamo=False)
    before = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    assert np.array_equal(before["0.weight"], m[0].weight.detach().numpy())
    out = tmp_path / "r.onnx"
    ifo.reinit(path, out, seed=2024, rules={"relu": "glorot_uniform", "tanh": "glorot_uniform"})
    after = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer}
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert np.array_equal(after[name], before[name]), name
    # A different seed changes every weight.
    ifo.reinit(path, out, seed=2025, force=True,
               rules={"relu": "glorot_uniform", "tanh": "glorot_uniform"})
    again = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer}
    assert not np.array_equal(again["0.weight"], before["0.weight"])
