import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from worldmem.config import ModelConfig
from worldmem.models.dit import WorldDiT
from worldmem.models.loading import load_world_model
from worldmem.pipeline import WorldPipeline

HEAVY = ("worldmem.models.backbones", "diffusers.models.transformers")


def test_a_worlddit_folder_loads_and_runs_without_importing_the_backbones(tiny_pipeline_dir):
    # a fresh interpreter: this test process may have imported the backbones already
    code = (
        "import sys\n"
        "from worldmem.pipeline import WorldPipeline\n"
        f"pipe = WorldPipeline.from_pretrained({str(tiny_pipeline_dir)!r}, device='cpu')\n"
        "pipe.start(prompt='a red room', seed=0)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_load_world_model_gives_back_the_saved_weights_and_names_a_class_it_cannot_load(
    tiny_pipeline_dir, tmp_path
):
    cfg = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu").model_cfg
    model, _ = load_world_model(tiny_pipeline_dir / "model", cfg)
    assert isinstance(model, WorldDiT)
    # against the weights file itself, read without the loader
    saved = load_file(tiny_pipeline_dir / "model" / "diffusion_pytorch_model.safetensors")
    loaded = model.state_dict()
    assert saved.keys() <= loaded.keys() and len(saved) > 10
    assert all(torch.equal(saved[k], loaded[k].to(saved[k])) for k in saved)

    folder = tmp_path / "model"
    shutil.copytree(tiny_pipeline_dir / "model", folder)
    meta = json.loads((folder / "config.json").read_text())
    meta["_class_name"] = "UNet2DModel"
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"config.json: model class 'UNet2DModel' is not WorldDiT"):
        load_world_model(folder, cfg)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_world_model(tmp_path / "nowhere", ModelConfig())
