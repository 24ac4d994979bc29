import csv
import os
import re
import subprocess
import sys

import lightning as L
import pytest
import torch
from conftest import REPO
from lightning.pytorch.callbacks import Callback

import train
from worldmem.config import ConfigError, TrainRootConfig, load_config, to_dict
from worldmem.data.batch import collate_world_batches
from worldmem.data.dataset import WorldDataModule, WorldDataset
from worldmem.training.module import WorldModule, warmup_cosine
from worldmem.training.trainer import build_trainer, find_last_checkpoint, metrics_files

TINY = [
    "model.image_size=32",
    "model.patch_size=8",
    "model.hidden_size=64",
    "model.depth=2",
    "model.num_heads=2",
    "model.text_width=64",
    "model.text_layers=1",
    "model.text_max_tokens=32",
    "model.max_frames=8",
    "model.text_encoder=bytes",
    "model.conv_widths=[8,16,16]",
    "data.image_size=32",
    "data.batch_size=2",
    "data.num_workers=0",
    "memory.overlap_samples=64",
    "train.log_every_steps=1",
    "train.sample_every_steps=0",
    "train.val_every_steps=1000",
    "train.warmup_steps=2",
    "train.accelerator=cpu",
    "train.devices=1",
]


def _cfg(root, out, *extra):
    return load_config(
        TrainRootConfig,
        overrides=[*TINY, f"data.root={root}", f"train.out_dir={out}", *extra],
    )


def test_warmup_cosine_schedule_shape():
    lrs = [warmup_cosine(s, 10, 100, 0.1) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(0.1) and lrs[119] == pytest.approx(0.1)


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(synthetic_root, tmp_path):
    cfg = _cfg(
        synthetic_root,
        tmp_path,
        "train.p_drop_working=0",
        "train.p_drop_episodic=0",
        "train.p_drop_spatial=0",
        "train.p_drop_text=0",
    )
    module = WorldModule(to_dict(cfg))
    ds = WorldDataset(cfg.data, cfg.memory, "train")
    batch = collate_world_batches([ds[i] for i in range(4)])
    opt = torch.optim.AdamW(module.model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)

    def loss():
        g.manual_seed(0)  # the same noise and timesteps every time
        return module.flow.training_losses(
            module.model, module.codec, batch, drop=None, depth_loss_weight=0.5, generator=g
        )["loss"]

    first = loss().item()
    for _ in range(30):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.6 * first


def test_optimizer_ema_and_validation_settings_come_from_the_config(tmp_path):
    cfg = _cfg(tmp_path, tmp_path)
    t = cfg.train
    assert (t.adam_beta1, t.adam_beta2, t.ema_warmup_offset, t.val_batches) == (0.9, 0.99, 10, 4)
    extra = [
        "train.adam_beta1=0.8",
        "train.adam_beta2=0.95",
        "train.ema_warmup_offset=4",
        "train.val_batches=7",
    ]
    cfg = _cfg(tmp_path, tmp_path, *extra)
    module = WorldModule(to_dict(cfg))
    opt = module.configure_optimizers()["optimizer"]
    assert [g["betas"] for g in opt.param_groups] == [(0.8, 0.95), (0.8, 0.95)]
    assert build_trainer(cfg.train).limit_val_batches == 7
    # At step 0 the EMA decay is 1 / ema_warmup_offset: the average moves 3/4 of the way.
    with torch.no_grad():
        for e, p in zip(module.ema.parameters(), module.model.parameters()):
            e.zero_()
            p.fill_(1.0)
    module.on_train_batch_end(None, None, 0)
    assert all(torch.allclose(e, torch.full_like(e, 0.75)) for e in module.ema.parameters())


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.adam_beta2=1.0", r"TrainConfig.adam_beta2: expected a number in \[0, 1\)"),
        ("train.ema_warmup_offset=0", r"TrainConfig.ema_warmup_offset: expected an integer"),
        ("train.val_batches=0", r"TrainConfig.val_batches: expected an integer"),
        ("train.depth_loss=l3", r"TrainConfig.depth_loss: 'l3' is not one of l2, l1"),
    ],
)
def test_bad_optimizer_ema_and_validation_settings_are_named(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(tmp_path, tmp_path, override)


class _Capture(Callback):
    def on_train_start(self, trainer, module):
        self.step = trainer.global_step
        opt = trainer.optimizers[0]
        state = opt.state_dict()["state"]  # indexed in the optimizer's own parameter order
        self.exp_avg = [state[i]["exp_avg"].clone() for i in sorted(state)]
        self.lr = opt.param_groups[0]["lr"]


def test_resume_continues_at_the_same_step_with_the_same_optimizer_state(synthetic_root, tmp_path):
    cfg = _cfg(synthetic_root, tmp_path, "train.max_steps=4", "train.ckpt_every_steps=2")
    L.seed_everything(0)
    trainer = build_trainer(cfg.train)
    module = WorldModule(to_dict(cfg))
    trainer.fit(module, datamodule=WorldDataModule(cfg.data, cfg.memory))
    saved_opt = trainer.optimizers[0].state_dict()
    ckpt = find_last_checkpoint(tmp_path)
    assert ckpt is not None

    cfg2 = _cfg(synthetic_root, tmp_path, "train.max_steps=6", "train.ckpt_every_steps=2")
    cap = _Capture()
    trainer2 = build_trainer(cfg2.train, [cap])
    module2 = WorldModule(to_dict(cfg2))
    dm2 = WorldDataModule(cfg2.data, cfg2.memory)
    trainer2.fit(module2, datamodule=dm2, ckpt_path=str(ckpt), weights_only=True)  # as train.py
    assert cap.step == 4
    want = [saved_opt["state"][i]["exp_avg"] for i in sorted(saved_opt["state"])]
    assert len(cap.exp_avg) == len(want)
    assert all(torch.equal(a, b) for a, b in zip(cap.exp_avg, want))
    # The restored optimizer holds the learning rate the first run ended with.
    assert cap.lr == pytest.approx(cfg.train.lr * warmup_cosine(4, 2, 4, cfg.train.min_lr_ratio))
    assert trainer2.global_step == 6
    assert len(metrics_files(tmp_path)) == 2  # the first run's log is kept, not overwritten
    # The checkpoint carries its resolved config; loading rebuilds the same model.
    loaded = WorldModule.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=True)
    assert loaded.cfg.model.hidden_size == 64


def test_train_py_resumes_its_last_checkpoint(synthetic_root, tmp_path):
    every = "train.ckpt_every_steps=1"
    train.main(_cfg(synthetic_root, tmp_path, "train.max_steps=2", every))
    last = find_last_checkpoint(tmp_path)
    assert torch.load(last, weights_only=True)["global_step"] == 2  # plain data only
    train.main(_cfg(synthetic_root, tmp_path, "train.max_steps=3", every, "train.resume=last"))
    assert torch.load(last, weights_only=True)["global_step"] == 3
    _, second = metrics_files(tmp_path)
    with open(second) as f:  # the resumed run trained only the third step (index 2)
        assert {int(r["step"]) for r in csv.DictReader(f)} == {2}


class _RunsCode:
    """Unpickling this writes ``marker``: what a crafted checkpoint can do to ``torch.load``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def test_resume_from_a_checkpoint_that_would_run_code_is_refused_without_running_it(
    synthetic_root, tmp_path
):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "crafted.ckpt"
    torch.save({"global_step": 1, "state_dict": {}, "epoch": 0, "x": _RunsCode(marker)}, path)
    cfg = _cfg(synthetic_root, tmp_path / "run", "train.max_steps=2", f"train.resume={path}")
    want = re.escape(str(path)) + r" is not a checkpoint this project wrote.*\(exec\)"
    with pytest.raises(ValueError, match=want):
        train.main(cfg)
    assert not marker.exists()


@pytest.mark.slow
def test_two_process_ddp_ends_with_identical_weights(synthetic_root, tmp_path):
    cmd = [
        sys.executable,
        str(REPO / "tests" / "training" / "ddp_run.py"),
        str(tmp_path),
        *TINY,
        f"data.root={synthetic_root}",
        f"train.out_dir={tmp_path / 'run'}",
        "train.max_steps=3",
        "train.strategy=ddp",
        "train.devices=2",
        "train.ckpt_every_steps=0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    a = torch.load(tmp_path / "rank0.pt")
    b = torch.load(tmp_path / "rank1.pt")
    init = torch.load(tmp_path / "init0.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], init[k]) for k in a)  # training did change the weights


def test_init_from_a_pipeline_folder_starts_model_and_ema(synthetic_root, tmp_path):
    from worldmem.pipeline import WorldPipeline

    cfg = _cfg(synthetic_root, tmp_path / "a")
    src = WorldModule(to_dict(cfg))
    with torch.no_grad():
        for p in src.ema.parameters():
            p.add_(0.01 * torch.randn_like(p))  # weights a fresh module would not have
    folder = WorldPipeline.from_module(src).save_pretrained(tmp_path / "pipeline")
    dst = WorldModule(to_dict(cfg))
    dst.load_weights_from(str(folder))
    for a, b, c in zip(src.ema.parameters(), dst.model.parameters(), dst.ema.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)
    other = WorldModule(to_dict(_cfg(synthetic_root, tmp_path / "b", "model.hidden_size=32")))
    with pytest.raises(ValueError, match="holds a model of config"):
        other.load_weights_from(str(folder))


def test_init_from_a_model_without_provenance_starts_one_with_it_unchanged(
    synthetic_root, tmp_path
):
    from worldmem.diffusion import encode_frames
    from worldmem.diffusion.dummy import dummy_world_batch
    from worldmem.diffusion.flow import encode_memories
    from worldmem.models import ModelFrames
    from worldmem.pipeline import WorldPipeline

    src = WorldModule(to_dict(_cfg(synthetic_root, tmp_path / "a")))
    with torch.no_grad():
        for p in src.ema.parameters():
            p.add_(0.05 * torch.randn_like(p))  # so the output layer draws something
    folder = WorldPipeline.from_module(src).save_pretrained(tmp_path / "pipeline")
    cfg = _cfg(synthetic_root, tmp_path / "b", "model.memory_provenance=true")
    dst = WorldModule(to_dict(cfg))
    dst.load_weights_from(str(folder))

    def run(module):
        batch = dummy_world_batch(2, 2, 2, 2, cfg.model.image_size, seed=3)
        ctx, kf, mem = encode_memories(module.codec, batch.conditioning)
        x = encode_frames(module.codec, batch.target).x
        target = ModelFrames(x, torch.full((2, 2), 0.5), *(batch.target.c2w, batch.target.K),
                             batch.target.valid)  # fmt: skip
        out = module.ema.eval()(target, ctx, kf, mem, captions=batch.caption)
        return mem, out.x0

    mem_src, x0_src = run(src)
    mem_dst, x0_dst = run(dst)
    assert mem_src.shape[2] + 1 == mem_dst.shape[2] and mem_dst[:, :, -1].any()
    torch.testing.assert_close(x0_dst, x0_src, atol=1e-6, rtol=1e-5)  # the new input is zero
    with torch.no_grad():
        dst.ema.stem.inp.weight[:, -1] = 0.5  # once it learns to read it, it sees provenance
    assert not torch.allclose(run(dst)[1], x0_src, atol=1e-3)
    back = WorldModule(to_dict(_cfg(synthetic_root, tmp_path / "c")))
    prov = WorldPipeline.from_module(dst).save_pretrained(tmp_path / "prov")
    with pytest.raises(ValueError, match="holds a model of config"):
        back.load_weights_from(str(prov))  # the channel is never dropped silently
