# Two entry points: `make demo` (generate a video with the bundled model) and `make test`.
# Each creates .venv on first use and installs with constraints.txt, which pins torch so pip
# never swaps in a multi-GB CUDA build on CPU machines.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint data train train-depth train-detail train-first-frame first-frame-bank clean

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[test,e2e,backbones]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) sample.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

# The shipped tiny model's data: 300 synthetic episodes (seeds 0-299, the last 10 for
# validation); `make train` runs configs/train/tiny.yaml from scratch (what the shipped weights
# ran, in parts, is in checkpoints/worldmem-tiny/README.md).
data: $(STAMP)
	$(PY) datasets/synthetic.py --out data/synthetic --episodes 300 --frames 96 --size 64 \
		--val-fraction 0.034 --workers 2

train: $(STAMP)
	$(PY) train.py --config configs/train/tiny.yaml

# the depth net (start images without depth, and what the model invents): 40 minutes on one core
train-depth: $(STAMP)
	$(PY) -m worldmem.training.depth_net --data data/synthetic --out runs/depth_net --minutes 40

# the detail net (not used by the shipped model): the world model's rollouts in 180 training
# worlds (about 30 min), then 2,750 steps (about 25 min)
train-detail: $(STAMP)
	$(PY) -m worldmem.training.detail_net collect --checkpoint checkpoints/worldmem-tiny \
		--seeds 0:180 --out runs/detail/rollouts.npz
	$(PY) -m worldmem.training.detail_net train --rollouts runs/detail/rollouts.npz \
		--out runs/detail/net --steps 2750 --minutes 60

# the first-frame net (not used by the shipped model): a caption-conditioned GAN on every
# second frame of the training episodes, 2,000 steps (about 25 minutes on one thread)
train-first-frame: $(STAMP)
	$(PY) -m worldmem.training.first_frame --data data/synthetic --out runs/first_frame \
		--steps 2000 --val-every 400 --kid-frames 100 --threads 1

# the first-frame bank the shipped model starts a prompt-only world from: one level view of
# each training episode with its depth and caption (about 10 s)
first-frame-bank: $(STAMP)
	$(PY) -m worldmem.models.first_frame_bank --data data/synthetic \
		--pipeline checkpoints/worldmem-tiny

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
