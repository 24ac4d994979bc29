"""The first-frame trainer: its losses against hand-made cases, a tiny GAN that learns to
follow its captions, and the command line end to end on a synthetic dataset."""

import csv

import pytest
import torch
from conftest import write_synthetic_dataset

from worldmem.models.first_frame import (
    FirstFrameConfig,
    FirstFrameCritic,
    FirstFrameNet,
    caption_embedding,
)
from worldmem.training.first_frame import gan_step, hinge_losses, load_frames, main


def test_hinge_losses_match_hand_values():
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - x): 0, 0.5, 2 -> mean 5/6
    fake = torch.tensor([-2.0, 0.0])  # relu(1 + x): 0, 1 -> mean 1/2
    d, g = hinge_losses(real, fake)
    assert d.item() == pytest.approx(5 / 6 + 1 / 2)
    assert g.item() == pytest.approx(1.0)  # -mean(fake)


def test_a_tiny_gan_learns_to_draw_the_colour_its_caption_names():
    """Frames of "a red room" are red and of "a blue room" blue (with random brightness and
    a random darker floor band); after 600 steps the net (the default normalisation, drawing
    in eval mode as the pipeline does) draws red for the first caption and blue for the
    second, which it could only do by reading the caption."""
    torch.manual_seed(0)
    captions = ["a red room", "a blue room"]
    text = caption_embedding(captions)
    net = FirstFrameNet(FirstFrameConfig(image_size=16, z_dim=8, text_proj=16, widths=(16, 8)))
    critic = FirstFrameCritic(widths=(16, 32))
    opt_g = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.99))
    g = torch.Generator().manual_seed(0)

    def batch(n=16):
        which = torch.randint(2, (n,), generator=g)
        colour = torch.stack([torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.1, 0.1, 0.9])])
        bright = 0.6 + 0.4 * torch.rand(n, generator=g)
        frames = colour[which][:, :, None, None] * bright[:, None, None, None]
        frames = frames.expand(n, 3, 16, 16).clone()
        rows = torch.randint(8, 14, (n,), generator=g)
        for i in range(n):
            frames[i, :, rows[i] :] *= 0.5
        return frames, text[which]

    def redness(caption_row):
        out = net.generate([captions[caption_row]] * 64, torch.Generator().manual_seed(1))
        return (out[:, 0] - out[:, 2]).mean().item()

    before = (redness(0), redness(1))
    for _ in range(600):
        real, cond = batch()
        gan_step(net, critic, opt_g, opt_d, real, cond, torch.randn(16, 8, generator=g))
    after = (redness(0), redness(1))
    assert abs(before[0] - before[1]) < 0.1  # untrained: the caption changes little
    assert after[0] > 0.3 and after[1] < -0.3, (before, after)


def test_cli_end_to_end_and_resume(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", episodes=3, frames=12, size=32)
    frames, captions, owner = load_frames(data, "train", 3)
    assert frames.dtype == torch.uint8 and frames.shape == (8, 3, 32, 32)
    assert len(captions) == 2 and owner.tolist() == [0] * 4 + [1] * 4
    out = tmp_path / "net"
    args = ["--data", str(data), "--out", str(out), "--every", "3", "--widths", "16", "8", "8"]
    args += ["--batch", "4", "--val-every", "2", "--keep-every", "4", "--kid-frames", "4"]
    assert main(args + ["--steps", "4"]) == 0
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]  # validation steps are always logged
    assert all(0 <= float(r["val_kid"]) < 10 for r in rows)
    assert (out / "preview.png").is_file()
    net, kept = FirstFrameNet.from_pretrained(out), FirstFrameNet.from_pretrained(out / "step_4")
    for a, b in zip(net.state_dict().values(), kept.state_dict().values()):
        assert torch.equal(a, b)
    assert main(args + ["--steps", "2", "--resume", str(out), "--no-kid"]) == 0
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4, 2]  # appended: the resumed run's steps
    assert rows[-1]["val_kid"] == ""


def test_bad_dataset_is_refused_naming_it(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", episodes=2, frames=12, size=32)
    with pytest.raises(ValueError, match="no test episodes"):
        load_frames(data, "test", 1)
    with pytest.raises(ValueError, match="manifest not found"):
        load_frames(tmp_path / "nothing", "train", 1)
