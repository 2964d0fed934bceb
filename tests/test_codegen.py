"""Issue 11, "Show the code": `aestudio code RUN > model.py` writes a standalone PyTorch file that loads the
run's weights strictly and computes what aestudio's model computes, for every architecture and kind."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from aestudio import cli
from aestudio.core import codegen
from aestudio.core.checkpoint import load_run, save_run
from aestudio.core.codegen import CodegenError, generate_code, verify_code
from aestudio.core.config import ACTIVATIONS, KINDS, ModelConfig, TrainConfig
from aestudio.core.models import Autoencoder, count_parameters

SHAPE = (1, 8, 8)

CASES = {
    "dense-ae": dict(arch="dense", kind="ae", hidden=(16, 8)),
    "dense-vae-bn-dropout": dict(arch="dense", kind="vae", hidden=(16,), batch_norm=True, dropout=0.2),
    "dense-sparse-kl": dict(arch="dense", kind="sparse", sparsity="kl", hidden=(16,)),
    "dense-sparse-l1": dict(arch="dense", kind="sparse", sparsity="l1", hidden=(16,)),
    "dense-contractive": dict(arch="dense", kind="contractive", hidden=(16,), activation="sigmoid"),
    "dense-tied": dict(arch="dense", kind="ae", hidden=(16, 8), tied=True, batch_norm=True),
    "dense-stacked": dict(arch="dense", kind="ae", hidden=(16, 8), stacked=True, activations=("elu", "tanh")),
    "dense-linear-output": dict(arch="dense", kind="ae", hidden=(16,), output="linear", activation="leaky_relu"),
    "conv-ae": dict(arch="conv", kind="ae", hidden=(4, 8)),
    "conv-vae-bn-dropout": dict(arch="conv", kind="vae", hidden=(4, 8), batch_norm=True, dropout=0.1),
    "conv-sparse-stacked": dict(arch="conv", kind="sparse", hidden=(4,), stacked=True, init="xavier"),
    "conv-contractive-rgb": dict(arch="conv", kind="contractive", hidden=(4,), input_shape=(3, 8, 8)),
    "conv-dense-vae-bn-dropout": dict(arch="conv", kind="vae", hidden=(4, 8), dense_layers=(16,), batch_norm=True,
                                      dropout=0.1),
    "conv-dense-stacked": dict(arch="conv", kind="ae", hidden=(4,), dense_layers=(16, 8), stacked=True),
    # odd sides: halved down (13 -> 6 -> 3, 11 -> 5 -> 2), padded back by the transposed convs' output_padding
    "conv-odd-sides": dict(arch="conv", kind="ae", hidden=(4, 8), input_shape=(1, 13, 11)),
    "recurrent-lstm-ae": dict(arch="recurrent", kind="ae", hidden=(12,), rnn_cell="lstm"),
    "recurrent-gru-vae": dict(arch="recurrent", kind="vae", hidden=(12,), rnn_cell="gru"),
}
if "aae" in KINDS:
    CASES["dense-aae"] = dict(arch="dense", kind="aae", hidden=(16,))
    CASES["conv-aae"] = dict(arch="conv", kind="aae", hidden=(4,))
if "linear" in ACTIVATIONS:
    CASES["dense-linear-activation"] = dict(arch="dense", kind="ae", hidden=(16,), activation="linear")
    CASES["dense-no-hidden"] = dict(arch="dense", kind="ae", hidden=())


def _perturbed_model(cfg: ModelConfig) -> Autoencoder:
    """A model whose every parameter and buffer is non-trivial, so a wrong name or a missed buffer shows."""
    torch.manual_seed(3)
    m = Autoencoder(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
        m.input_mean.uniform_(0.1, 0.6)
        m.input_scale.fill_(2.5)
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


DRIVER = textwrap.dedent('''
    import importlib.util, io, json, sys, contextlib
    import numpy as np, torch
    torch.set_num_threads(1)
    results = {}
    for case in json.loads(sys.argv[1]):
        spec = importlib.util.spec_from_file_location("model_" + case["name"].replace("-", "_"), case["code"])
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = mod.main([case["run"]])            # loads strictly, prints the parameter count
        from safetensors.torch import load_file
        model = mod.Autoencoder()
        model.load_state_dict(load_file(case["run"] + "/weights.safetensors"), strict=True)
        model.eval()
        x = torch.from_numpy(np.load(case["x"]))
        with torch.no_grad():
            y = model(x).numpy()
            code = model.encode(x)
            code = (code[0] if isinstance(code, tuple) else code).numpy()
        want_y, want_code = np.load(case["y"]), np.load(case["code_want"])
        results[case["name"]] = {"rc": rc, "printed": out.getvalue(),
                                 "y_diff": float(np.abs(y - want_y).max()),
                                 "code_diff": float(np.abs(code - want_code).max()),
                                 "modules": sorted(m for m in sys.modules if m.split(".")[0] == "aestudio")}
    print(json.dumps(results))
''')


def test_model_py_loads_strictly_and_matches_for_every_architecture_and_kind(tmp_path, capsys, torch_one_thread):
    cases = []
    expected_params = {}
    for name, fields in CASES.items():
        fields = {"input_shape": SHAPE, "latent": 3, **fields}
        cfg = ModelConfig(**fields)
        model = _perturbed_model(cfg)
        run = save_run(tmp_path / name, cfg, TrainConfig(epochs=1), model, history=[], data="digits")
        rc = cli.main(["code", str(run)])
        out = capsys.readouterr()
        assert rc == 0, out.err
        code_file = tmp_path / f"{name}.py"
        code_file.write_text(out.out)
        # aestudio's own model as it loads from the run folder
        loaded = load_run(run).model
        g = torch.Generator().manual_seed(0)
        x = torch.rand((4, *cfg.input_shape), generator=g)
        with torch.no_grad():
            np.save(tmp_path / f"{name}.x.npy", x.numpy())
            np.save(tmp_path / f"{name}.y.npy", loaded(x).numpy())
            np.save(tmp_path / f"{name}.code.npy", loaded.encode(x).mu.numpy())
        expected_params[name] = count_parameters(loaded)
        cases.append({"name": name, "code": str(code_file), "run": str(run), "x": str(tmp_path / f"{name}.x.npy"),
                      "y": str(tmp_path / f"{name}.y.npy"), "code_want": str(tmp_path / f"{name}.code.npy")})
    # one fresh interpreter runs every file: it never imports aestudio
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(CASES)
    for name, r in results.items():
        assert r["rc"] == 0, name
        assert f"{expected_params[name]:,} parameters" in r["printed"], (name, r["printed"])
        assert "strictly" in r["printed"]
        assert r["y_diff"] <= 1e-5, (name, r["y_diff"])
        assert r["code_diff"] <= 1e-5, (name, r["code_diff"])
        assert r["modules"] == [], (name, r["modules"])


def test_the_script_refuses_weights_of_another_model(tmp_path, capsys):
    small = ModelConfig(arch="dense", kind="ae", input_shape=SHAPE, latent=3, hidden=(16,))
    other = ModelConfig(arch="dense", kind="ae", input_shape=SHAPE, latent=4, hidden=(16,))
    run = save_run(tmp_path / "other", other, TrainConfig(epochs=1), Autoencoder(other), history=[])
    code = tmp_path / "model.py"
    code.write_text(generate_code(small))
    proc = subprocess.run([sys.executable, str(code), str(run)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "size mismatch" in proc.stderr


def test_generated_text_is_readable(tmp_path):
    text = generate_code(ModelConfig(arch="conv", kind="vae", input_shape=(1, 28, 28), latent=16, batch_norm=True))
    assert text.count("class Autoencoder(nn.Module)") == 1
    assert "nn.Conv2d(1, 32, kernel_size=4, stride=2, padding=1)" in text
    assert "1x28x28 -> 32x14x14" in text and "64x7x7" in text
    assert "import aestudio" not in text and "from aestudio" not in text
    assert max(len(line) for line in text.splitlines()) <= 120
    compile(text, "model.py", "exec")


def test_verification_catches_code_that_computes_something_else():
    cfg = ModelConfig(arch="dense", kind="ae", input_shape=SHAPE, latent=3, hidden=(16,))
    text = generate_code(cfg)
    model = _perturbed_model(cfg)
    verify_code(text, model)  # the real text passes
    with pytest.raises(CodegenError, match="does not reproduce"):
        verify_code(text.replace("return torch.sigmoid(logits)", "return logits"), model)
    with pytest.raises(CodegenError, match="does not match"):
        verify_code(text.replace("nn.Linear(64, 16)", "nn.Linear(64, 17)"), model)


def test_unknown_kinds_and_layers_fail_clearly(monkeypatch, tmp_path, capsys):
    cfg = ModelConfig(arch="dense", kind="vae", input_shape=SHAPE, latent=3, hidden=(16,))
    monkeypatch.setattr(codegen, "KNOWN_KINDS", ("ae",))
    with pytest.raises(CodegenError, match="kind 'vae'"):
        generate_code(cfg)
    run = save_run(tmp_path / "vae", cfg, TrainConfig(epochs=1), Autoencoder(cfg), history=[])
    assert cli.main(["code", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aestudio: error: ") and "kind 'vae'" in err and len(err.splitlines()) == 1
    writer = codegen._Writer(Autoencoder(ModelConfig(arch="dense", input_shape=SHAPE, latent=3, hidden=(8,))))
    with pytest.raises(CodegenError, match="GELU"):
        writer.expr(torch.nn.GELU())


def test_code_command_needs_a_run(tmp_path, capsys):
    rc = cli.main(["code", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("aestudio: error: ") and len(err.splitlines()) == 1
    assert "not an aestudio run" in err


def test_generation_does_not_move_the_global_random_state():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    generate_code(ModelConfig(arch="dense", input_shape=SHAPE, latent=3, hidden=(8,)))
    assert torch.equal(torch.rand(3), before)


def test_codes_of_a_loaded_run_round_trip(tmp_path):
    """The model built from the written file reproduces `aestudio.core.models` exactly in-process too."""
    cfg = ModelConfig(arch="recurrent", kind="sparse", input_shape=(3, 8, 8), latent=3, hidden=(6,))
    model = _perturbed_model(cfg)
    ns: dict = {}
    exec(compile(generate_code(cfg), "model.py", "exec"), ns)
    written = ns["Autoencoder"]()
    written.load_state_dict(model.state_dict(), strict=True)
    written.eval()
    x = torch.rand(5, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(written.encode(x), model.encode(x).mu)
