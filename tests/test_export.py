"""Issue 11, export: `aestudio encode` (.csv, .npy, projector), `reconstruct`, `export --onnx/--torchscript`,
`train --tensorboard`, and one-line errors for bad input. Tiny models on scikit-learn's 8x8 digits."""
from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aestudio import cli
from aestudio.core import export
from aestudio.core.checkpoint import load_run, save_run
from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import load_dataset
from aestudio.core.export import ExportError
from aestudio.core.models import Autoencoder

CLASSES = "0,1,2"  # a few hundred digits keep every command quick


def _make_run(path: Path, data, **model) -> Path:
    """A saved run with non-trivial weights and data statistics (no training needed to test export)."""
    torch.manual_seed(1)
    cfg = ModelConfig(input_shape=data.shape, **model)
    m = Autoencoder(cfg)
    m.init_data_stats(torch.from_numpy(data.images).float() / 255.0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return save_run(path, cfg, TrainConfig(epochs=1), m.eval(), history=[], data="digits")


@pytest.fixture(scope="module")
def subset():
    data = load_dataset("digits")
    return data.filter_classes([0, 1, 2])


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory, subset, torch_one_thread):
    return _make_run(tmp_path_factory.mktemp("runs") / "dense", subset, arch="dense", kind="ae", latent=3, hidden=(16,))


@pytest.fixture(scope="module")
def conv_vae_run(tmp_path_factory, subset, torch_one_thread):
    return _make_run(tmp_path_factory.mktemp("runs") / "convvae", subset, arch="conv", kind="vae", latent=2,
                     hidden=(4, 8), batch_norm=True, dropout=0.2)


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory, subset, torch_one_thread):
    return _make_run(tmp_path_factory.mktemp("runs") / "gru", subset, arch="recurrent", kind="sparse", latent=3,
                     hidden=(6,), rnn_cell="gru")


def _ok(capsys, argv) -> str:
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


def _one_line_error(capsys, argv, fragment) -> str:
    rc = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    last = err.splitlines()[-1]
    assert last.startswith("aestudio: error: "), err
    assert fragment.lower() in last.lower(), last
    assert "Traceback" not in err
    return last


def _expected_codes(run_dir: Path, data) -> np.ndarray:
    model = load_run(run_dir).model
    with torch.no_grad():
        return model.encode(torch.from_numpy(data.images).float() / 255.0).mu.numpy()


# ---- encode ------------------------------------------------------------------------------------------
def test_encode_csv_has_file_label_and_the_models_codes(dense_run, subset, tmp_path, capsys):
    out = tmp_path / "codes.csv"
    _ok(capsys, ["encode", dense_run, "--data", "digits", "--classes", CLASSES, "--out", out])
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "label", "z1", "z2", "z3"]
    assert len(rows) == subset.n + 1
    assert [r[1] for r in rows[1:]] == [subset.class_names[i] for i in subset.labels]
    assert len({r[0] for r in rows[1:]}) == subset.n  # one distinct name per image
    codes = np.array([[float(v) for v in r[2:]] for r in rows[1:]], np.float32)
    np.testing.assert_allclose(codes, _expected_codes(dense_run, subset), rtol=0, atol=1e-6)


def test_without_data_encode_and_reconstruct_read_the_runs_own_set(subset, tmp_path, capsys, torch_one_thread):
    # a run trained on three classes of digits: without --data both commands read those images again
    run_dir = _make_run(tmp_path / "own", subset, arch="dense", kind="ae", latent=3, hidden=(16,))
    config = run_dir / "config.json"
    meta = json.loads(config.read_text())
    meta["classes"] = ["0", "1", "2"]
    config.write_text(json.dumps(meta))
    out = tmp_path / "codes.csv"
    rc = cli.main(["encode", str(run_dir), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "the run's own set" in err
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == subset.n + 1 and {r[1] for r in rows[1:]} == {"0", "1", "2"}
    codes = np.array([[float(v) for v in r[2:]] for r in rows[1:]], np.float32)
    np.testing.assert_allclose(codes, _expected_codes(run_dir, subset), rtol=0, atol=1e-6)
    _ok(capsys, ["reconstruct", run_dir, "--out", tmp_path / "recon"])
    assert len(list((tmp_path / "recon").rglob("*.png"))) == subset.n
    # the flags that change the set need --data; a recorded path out of the run folder needs consent
    _one_line_error(capsys, ["encode", run_dir, "--classes", "1", "--out", tmp_path / "c.csv"], "need --data")
    meta["data"] = "../elsewhere"
    config.write_text(json.dumps(meta))
    _one_line_error(capsys, ["encode", run_dir, "--out", tmp_path / "c.csv"], "--trust-data")
    meta.pop("data")
    config.write_text(json.dumps(meta))
    _one_line_error(capsys, ["reconstruct", run_dir, "--out", tmp_path / "r"], "does not record its data set")


def test_encode_npy_writes_the_matrix_and_a_meta_file(dense_run, subset, tmp_path, capsys):
    out = tmp_path / "sub" / "codes.npy"  # a missing folder is created
    _ok(capsys, ["encode", dense_run, "--data", "digits", "--classes", CLASSES, "--out", out])
    codes = np.load(out, allow_pickle=False)
    assert codes.shape == (subset.n, 3) and codes.dtype == np.float32
    np.testing.assert_allclose(codes, _expected_codes(dense_run, subset), atol=1e-6)
    with open(tmp_path / "sub" / "codes.meta.csv", newline="") as f:
        meta = list(csv.reader(f))
    assert meta[0] == ["file", "label"] and len(meta) == subset.n + 1


def test_encode_names_folder_images_by_their_files(dense_run, tmp_path, capsys):
    folder = tmp_path / "imgs"
    for cls in ("cats", "dogs"):
        (folder / cls).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(np.full((12, 12), 40 * k + 60, np.uint8)).save(folder / cls / f"im{k}.png")
    out = tmp_path / "codes.csv"
    _ok(capsys, ["encode", dense_run, "--data", folder, "--out", out])  # resized to the model's 8x8
    rows = list(csv.reader(open(out, newline="")))[1:]
    assert [(r[0], r[1]) for r in rows] == [("cats/im0.png", "cats"), ("cats/im1.png", "cats"),
                                            ("dogs/im0.png", "dogs"), ("dogs/im1.png", "dogs")]


def test_projector_files_parse_and_agree(dense_run, subset, tmp_path, capsys):
    out = tmp_path / "proj"
    _ok(capsys, ["encode", dense_run, "--data", "digits", "--classes", CLASSES, "--format", "projector", "--out", out])
    vectors = (out / "vectors.tsv").read_text().splitlines()
    assert len(vectors) == subset.n and all(len(line.split("\t")) == 3 for line in vectors)
    np.testing.assert_allclose(np.array([[float(v) for v in line.split("\t")] for line in vectors]),
                               _expected_codes(dense_run, subset), atol=1e-6)
    meta = (out / "metadata.tsv").read_text().splitlines()
    assert meta[0] == "file\tlabel" and len(meta) == subset.n + 1  # a header, then one row per vector
    config = (out / "projector_config.pbtxt").read_text()
    dims = [int(v) for v in re.findall(r"single_image_dim:\s*(\d+)", config)]
    assert dims == [8, 8]
    sprite = Image.open(out / "sprite.png")
    cols = int(np.ceil(np.sqrt(subset.n)))
    assert sprite.size[0] == cols * 8 and sprite.size[1] >= int(np.ceil(subset.n / cols)) * 8
    # the first thumbnail is the first image
    np.testing.assert_array_equal(np.asarray(sprite)[:8, :8], subset.images[0, 0])
    text_format = pytest.importorskip("google.protobuf.text_format")
    projector = pytest.importorskip("tensorboard.plugins.projector.projector_config_pb2")
    parsed = text_format.Parse(config, projector.ProjectorConfig())
    emb = parsed.embeddings[0]
    assert (emb.tensor_path, emb.metadata_path, emb.sprite.image_path) == ("vectors.tsv", "metadata.tsv", "sprite.png")


def test_sprite_never_exceeds_the_projector_limit():
    cols, th, tw = export.sprite_layout(70_000, 28, 28)
    rows = int(np.ceil(70_000 / cols))
    assert cols * tw <= export.SPRITE_MAX_SIDE and rows * th <= export.SPRITE_MAX_SIDE
    cols, th, tw = export.sprite_layout(200_000, 28, 28)  # too many for full-size thumbnails: shrunk
    assert th < 28 and cols * tw <= export.SPRITE_MAX_SIDE


# ---- reconstruct ---------------------------------------------------------------------------------------
def test_reconstruct_writes_pngs_named_after_their_sources(dense_run, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg", "b.png"):  # b.jpg and b.png must not overwrite each other
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / name)
    out = tmp_path / "recon"
    _ok(capsys, ["reconstruct", dense_run, "--data", folder, "--out", out])
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a.png", "b.png", "b_jpg.png"] or names == ["a.png", "b.png", "b_png.png"]
    data = load_dataset(str(folder), image_size=8, channels=1)
    run = load_run(dense_run)
    with torch.no_grad():
        want = run.model(torch.from_numpy(data.images).float() / 255.0).numpy()
    got = np.asarray(Image.open(out / "a.png"), np.float32) / 255.0
    index = [Path(f).name for f in data.files].index("a.png")
    np.testing.assert_allclose(got, want[index, 0], atol=0.5 / 255 + 1e-6)


def test_reconstruct_with_noise_writes_denoised_and_noisy_images(conv_vae_run, tmp_path, capsys):
    out = tmp_path / "den"
    text = _ok(capsys, ["reconstruct", conv_vae_run, "--data", "digits", "--classes", "0", "--out", out,
                        "--noise", "gaussian:0.4"])
    assert "denoised" in text
    outs = sorted(p.name for p in out.glob("*.png"))
    noisy = sorted(p.name for p in (out / "noisy").glob("*.png"))
    assert outs == noisy and len(outs) == 178 and outs[0] == "digits-00000.png"
    clean = load_dataset("digits").filter_classes([0]).images[0, 0]
    noisy0 = np.asarray(Image.open(out / "noisy" / outs[0]), np.int16)
    assert np.abs(noisy0 - clean).mean() > 20  # the inputs really were corrupted


# ---- ONNX and TorchScript ---------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["dense_run", "conv_vae_run", "gru_run"])
def test_onnx_round_trip_matches_aestudio_encode(which, request, subset, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    run_dir = request.getfixturevalue(which)
    text = _ok(capsys, ["export", run_dir, "--onnx", tmp_path / "onnx"])
    assert "encoder.onnx" in text and "max |exported - PyTorch|" in text
    _ok(capsys, ["encode", run_dir, "--data", "digits", "--classes", CLASSES, "--out", tmp_path / "codes.npy"])
    want = np.load(tmp_path / "codes.npy")
    enc = ort.InferenceSession(str(tmp_path / "onnx" / "encoder.onnx"), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(tmp_path / "onnx" / "decoder.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in enc.get_inputs()] == ["images"] and [i.name for i in dec.get_inputs()] == ["codes"]
    assert not isinstance(enc.get_inputs()[0].shape[0], int)  # a free batch size
    images = subset.images.astype(np.float32) / 255.0
    got = np.concatenate([enc.run(None, {"images": images[i:i + 37]})[0] for i in range(0, len(images), 37)])
    assert np.abs(got - want).max() <= 1e-4
    model = load_run(run_dir).model
    with torch.no_grad():
        decoded = model.decode(torch.from_numpy(want[:11])).numpy()
    assert np.abs(dec.run(None, {"codes": want[:11]})[0] - decoded).max() <= 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_matches_pytorch(conv_vae_run, subset, tmp_path, capsys):
    _ok(capsys, ["export", conv_vae_run, "--torchscript", tmp_path / "ts"])
    enc = torch.jit.load(str(tmp_path / "ts" / "encoder.pt"))  # a file this test just wrote
    dec = torch.jit.load(str(tmp_path / "ts" / "decoder.pt"))
    x = torch.from_numpy(subset.images[:13]).float() / 255.0
    model = load_run(conv_vae_run).model
    with torch.no_grad():
        torch.testing.assert_close(enc(x), model.encode(x).mu, atol=1e-5, rtol=0)
        z = torch.randn(3, 2)
        torch.testing.assert_close(dec(z), model.decode(z), atol=1e-5, rtol=0)


def test_a_failed_check_writes_nothing(dense_run, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # no output can pass
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export.export_onnx(load_run(dense_run).model, tmp_path / "o")
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export.export_torchscript(load_run(dense_run).model, tmp_path / "t")
    assert list((tmp_path / "o").iterdir()) == [] and list((tmp_path / "t").iterdir()) == []


def test_missing_onnx_says_how_to_install(dense_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import fails as if it were not installed
    _one_line_error(capsys, ["export", dense_run, "--onnx", tmp_path / "o"], "pip install 'aestudio[export]'")


def test_export_needs_a_target(dense_run, capsys):
    _one_line_error(capsys, ["export", dense_run], "--onnx")


# ---- TensorBoard -----------------------------------------------------------------------------------------
def test_train_logs_scalars_images_and_codes_to_tensorboard(tmp_path, capsys, torch_one_thread):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = tmp_path / "tb"
    _ok(capsys, ["train", "--data", "digits", "--classes", CLASSES, "--arch", "dense", "--kind", "vae", "--latent", "2",
                 "--hidden", "8", "--epochs", "2", "--out", tmp_path / "run", "--quiet", "--tensorboard", tb])
    acc = EventAccumulator(str(tb))
    acc.Reload()
    tags = acc.Tags()
    for tag in ("train/total", "train/recon", "train/kl", "val/total", "val/kl"):
        assert tag in tags["scalars"], tags["scalars"]
        assert len(acc.Scalars(tag)) == 2  # one per epoch
    assert tags["images"] == ["reconstructions"] and len(acc.Images("reconstructions")) == 2
    assert (tb / "projector_config.pbtxt").is_file()
    tensors = next(tb.rglob("tensors.tsv")).read_text().splitlines()
    assert len(tensors) > 0 and all(len(line.split("\t")) == 2 for line in tensors)


def test_missing_tensorboard_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    _one_line_error(capsys, ["train", "--data", "digits", "--classes", "0", "--arch", "dense", "--latent", "2",
                             "--hidden", "8", "--epochs", "1", "--out", tmp_path / "run", "--quiet",
                             "--tensorboard", tmp_path / "tb"], "pip install 'aestudio[export]'")


# ---- bad input: one line, exit 2 ---------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["encode", "{bad}", "--data", "digits", "--out", "{tmp}/c.csv"],
    ["reconstruct", "{bad}", "--data", "digits", "--out", "{tmp}/r"],
    ["export", "{bad}", "--torchscript", "{tmp}/t"],
    ["code", "{bad}"],
])
@pytest.mark.parametrize("bad", ["missing", "empty", "file"])
def test_not_a_run_folder(argv, bad, tmp_path, capsys):
    target = tmp_path / bad
    if bad == "empty":
        target.mkdir()
    elif bad == "file":
        target.write_text("not a run")
    args = [a.format(bad=target, tmp=tmp_path) for a in argv]
    _one_line_error(capsys, args, str(target.name))


@pytest.mark.parametrize("command", ["encode", "reconstruct"])
def test_data_of_another_shape(command, dense_run, tmp_path, capsys):
    out = tmp_path / ("c.csv" if command == "encode" else "r")
    last = _one_line_error(capsys, [command, dense_run, "--data", "digits", "--image-size", "10", "--out", out],
                           "expects images of shape 1x8x8")
    assert "1x10x10" in last
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("argv", [
    ["encode", "{run}", "--data", "digits", "--out", "{blocker}/sub/c.csv"],
    ["encode", "{run}", "--data", "digits", "--format", "projector", "--out", "{blocker}/p"],
    ["reconstruct", "{run}", "--data", "digits", "--out", "{blocker}/r"],
    ["export", "{run}", "--torchscript", "{blocker}/t"],
    ["export", "{run}", "--onnx", "{blocker}/o"],
    ["encode", "{run}", "--data", "digits", "--out", "{tmp}/folder.csv"],  # a folder where a file should be
])
def test_unwritable_output(argv, dense_run, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    (tmp_path / "folder.csv").mkdir()
    args = [a.format(run=dense_run, blocker=blocker, tmp=tmp_path) for a in argv]
    _one_line_error(capsys, args, "cannot write")


def test_unknown_code_extension(dense_run, tmp_path, capsys):
    _one_line_error(capsys, ["encode", dense_run, "--data", "digits", "--out", tmp_path / "codes.txt"], ".npy or .csv")


def test_sprite_of_colour_images_keeps_order_and_shrinks_to_fit(monkeypatch):
    images = np.zeros((5, 3, 4, 4), np.uint8)
    for i in range(5):
        images[i, i % 3] = 40 * (i + 1)  # each image its own colour
    sprite = export.sprite_image(images)
    assert sprite.shape == (8, 12, 3)  # 3 columns, 2 rows of 4x4 thumbnails
    np.testing.assert_array_equal(sprite[0:4, 4:8], images[1].transpose(1, 2, 0))
    np.testing.assert_array_equal(sprite[4:8, 0:4], images[3].transpose(1, 2, 0))
    assert not sprite[4:8, 8:12].any()  # the unused cell stays black
    monkeypatch.setattr(export, "SPRITE_MAX_SIDE", 6)
    small = export.sprite_image(images[:4])
    assert small.shape == (6, 6, 3)  # 2x2 thumbnails of 3x3
    assert small[0:3, 3:6, 1].mean() > 0 and not small[0:3, 3:6, 0].any()  # image 1 is green only
