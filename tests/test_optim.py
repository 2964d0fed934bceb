"""The optimizer (core/optim.py): Muon for convolution kernels, Adam for the rest; saved and continued."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from aestudio import cli
from aestudio.core.config import ModelConfig, TrainConfig, dumps, from_json
from aestudio.core.optim import MUON_KEY, ConvMuonAdam, make_optimizer, orthogonalize
from aestudio.core.trained import from_trainer, open_trained, resume_trainer, save_trained
from aestudio.core.training import Trainer

TRAIN = TrainConfig(epochs=3, batch_size=32, lr=2e-3, device="cpu")


def _conv(digits) -> ModelConfig:
    return ModelConfig(arch="conv", kind="ae", latent=4, input_shape=digits.shape)


def _run(trainer: Trainer) -> Trainer:
    for _ in trainer.run():
        pass
    return trainer


@pytest.mark.parametrize("shape", [(3, 64, 512), (2, 300, 40), (1, 32, 32)])
def test_orthogonalize_sets_every_singular_value_near_one(shape):
    gen = torch.Generator().manual_seed(0)
    # an ill-conditioned start: singular values spread over an order of magnitude
    m = torch.randn(shape, generator=gen) @ torch.diag_embed(torch.logspace(0, -1, shape[-1])).expand(shape[0], -1, -1)
    sv = torch.linalg.svdvals(orthogonalize(m))
    assert sv.min() > 0.5 and sv.max() < 1.3
    # the same directions: the orthogonalised matrix is nearly the polar factor of m
    u, _, vh = torch.linalg.svd(m, full_matrices=False)
    cos = torch.nn.functional.cosine_similarity(orthogonalize(m).flatten(1), (u @ vh).flatten(1))
    assert (cos > 0.9).all()


def test_kernels_get_muon_state_and_the_rest_adam_state(digits, torch_one_thread):
    trainer = _run(Trainer(_conv(digits), TRAIN, digits))
    opt = trainer.optimizer
    assert isinstance(opt, ConvMuonAdam)
    params = [p for g in opt.param_groups for p in g["params"]]
    kernels = [p for p in params if p.ndim == 4]
    assert kernels and len(kernels) < len(params)
    for p in params:
        state = opt.state[p]
        assert set(state) == ({MUON_KEY, "step"} if p.ndim == 4 else {"exp_avg", "exp_avg_sq", "step"}), p.shape
    # it learns: the validation loss falls well below the first epoch's
    assert trainer.history[-1]["val_total"] < 0.9 * trainer.history[0]["val_total"]


def test_adam_alone_when_asked_or_when_there_is_no_kernel(digits):
    conv = Trainer(_conv(digits), dataclasses.replace(TRAIN, optimizer="adam"), digits)
    dense = Trainer(ModelConfig(arch="dense", latent=4, input_shape=digits.shape), TRAIN, digits)
    for t in (conv, dense):
        opt = make_optimizer(t.model.parameters(), 1e-3, torch.device("cpu"), t.train_config.optimizer)
        assert type(opt) is torch.optim.Adam


def test_a_kernel_step_moves_along_the_orthogonalised_gradient():
    conv = torch.nn.Conv2d(8, 16, 3, bias=False)
    before = conv.weight.detach().clone()
    opt = ConvMuonAdam(conv.parameters(), lr=1e-2)
    grad = torch.randn_like(conv.weight)
    conv.weight.grad = grad.clone()
    opt.step()
    step = (conv.weight.detach() - before).reshape(16, -1)
    # the first step: Nesterov momentum of one gradient is 1.95 x the gradient; its orthogonal factor
    expected = orthogonalize((grad * 1.95).reshape(1, 16, -1))[0] * (-1e-2 * 0.2 * 72 ** 0.5)
    torch.testing.assert_close(step, expected, rtol=1e-4, atol=1e-6)
    assert torch.equal(conv.weight.grad, grad)  # the gradient is left where it was


def test_muon_state_is_saved_and_a_continued_run_picks_it_up(digits, tmp_path, torch_one_thread):
    trainer = _run(Trainer(_conv(digits), TRAIN, digits))
    value = from_trainer(trainer, data_spec="digits")
    opened = open_trained(save_trained(value, tmp_path / "run"), digits)
    assert opened.notes == ()
    live = trainer.optimizer.state_dict()["state"]
    for i, s in live.items():
        for k, v in s.items():
            assert torch.equal(opened.optimizer["state"][i][k], v.cpu()), (i, k)
    more = resume_trainer(opened, opened.model_config, dataclasses.replace(opened.train_config, epochs=1), digits)
    first = more.evaluate_terms()["total"]
    _run(more)
    kernel = next(p for p in more.model.parameters() if p.ndim == 4)
    assert MUON_KEY in more.optimizer.state[kernel]
    assert more.history[-1]["val_total"] < first * 1.02  # continued, not thrown back by a fresh start


def test_switching_the_optimizer_on_continue_starts_the_switched_states_afresh(digits, tmp_path, torch_one_thread):
    adam = _run(Trainer(_conv(digits), dataclasses.replace(TRAIN, optimizer="adam"), digits))
    opened = open_trained(save_trained(from_trainer(adam, data_spec="digits"), tmp_path / "run"), digits)
    more = resume_trainer(opened, opened.model_config, dataclasses.replace(opened.train_config, optimizer="auto",
                                                                           epochs=1), digits)
    _run(more)  # no KeyError from Adam state on a Muon kernel, nor the other way round
    opt = more.optimizer
    batches = -(-more.n_train // TRAIN.batch_size)
    for i, p in enumerate(p for g in opt.param_groups for p in g["params"]):
        assert (MUON_KEY in opt.state[p]) == (p.ndim == 4)
        if p.ndim != 4:  # Adam's moments were kept: its step count went on from the saved run's
            assert float(opt.state[p]["step"]) == float(opened.optimizer["state"][i]["step"]) + batches


def test_runs_saved_before_the_setting_read_as_adam(digits):
    d = json.loads(dumps(_conv(digits), TRAIN))
    d["format_version"] = 3
    del d["train"]["optimizer"]
    assert from_json(d)[1].optimizer == "adam"
    d["format_version"] = 4
    assert from_json(d)[1].optimizer == "auto"  # today's file without the field: the default


def test_cli_optimizer_flag(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "--data", "digits", "--arch", "conv", "--latent", "4", "--epochs", "1",
                     "--optimizer", "adam", "--device", "cpu", "--out", str(out)])
    assert code == 0
    assert json.loads((out / "config.json").read_text())["train"]["optimizer"] == "adam"
    assert cli.main(["train", "--data", "digits", "--optimizer", "sgd", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'sgd'" in err and "Traceback" not in err


def test_a_loss_scaler_unscales_the_kernels_gradients_before_the_muon_step():
    """Under float16 mixed precision a GradScaler multiplies the loss; the kernels must step as unscaled."""
    def trained(scaled: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 3))
        opt = ConvMuonAdam(net.parameters(), lr=1e-2, fused=True)  # fused Adam could take the scale itself
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0) if scaled else None
        gen = torch.Generator().manual_seed(1)
        for _ in range(5):
            loss = net(torch.randn(4, 2, 6, 6, generator=gen)).pow(2).mean()
            opt.zero_grad()
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
        return [p.detach().clone() for p in net.parameters()]

    for a, b in zip(trained(False), trained(True)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_a_step_the_loss_scaler_skips_for_infinite_gradients_leaves_the_kernels_alone():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 3))
    opt = ConvMuonAdam(net.parameters(), lr=1e-2, fused=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    before = [p.detach().clone() for p in net.parameters()]
    loss = net(torch.randn(4, 2, 6, 6)).pow(2).mean() * float("inf")  # an overflow, as float16 can have
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    for a, p in zip(before, net.parameters()):
        assert torch.equal(a, p.detach())
    assert scaler.get_scale() < 1024.0  # the scaler saw the overflow and backed off
