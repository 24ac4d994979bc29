"""Hostile configs: every setting of both root configs overridden with every kind of bad
value (judged by this module's own reading of each setting), override syntax, YAML files
(syntax, tabs, duplicate keys, tags, aliases, includes, special files), and the command
lines that read them (sample.py, train.py, ``worldmem explore``)."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

from hostile.core import (
    REPO,
    Case,
    Context,
    Invalid,
    build,
    cli_outcome,
    guarded,
    place,
    refused_on,
    resolve_link_target,
    run_cli,
    runner,
    short,
    under,
)

# ============================================================================================
# Boundary: config files and key=value overrides (load_config), and on the command line
# ============================================================================================

SAMPLE_SECTIONS = ("sample", "server", "actions")
TRAIN_SECTIONS = ("model", "memory", "data", "train", "backbone")
# What no value of these may be (the campaign's own reading of each setting, not config.py's):
# the numbers that may be negative (devices: -1 is all of them)
SIGNED = {"train.timestep_logit_mean", "train.devices"}
ZERO_BAD = {  # 0 makes no sense (a size, a count that must exist, a rate, a divisor)
    "sample.steps",
    "sample.fps",
    "server.max_sessions",
    "server.idle_timeout_s",
    "server.reclaim_idle_s",
    "server.max_message_bytes",
    "server.max_prompt_chars",
    "server.max_messages_per_s",
    "model.image_size",
    "model.patch_size",
    "model.hidden_size",
    "model.depth",
    "model.num_heads",
    "model.mlp_ratio",
    "model.chunk_frames",
    "model.max_frames",
    "model.latent_channels",
    "model.latent_downsample",
    "model.text_max_tokens",
    "model.text_width",
    "model.depth_near_m",
    "backbone.lora_rank",
    "memory.voxel_size_m",
    "memory.max_points",
    "memory.max_depth_m",
    "memory.max_splat_radius_px",
    "memory.max_confidence",
    "memory.keyframe_capacity",
    "memory.overlap_samples",
    "memory.near_m",
    "memory.far_m",
    "data.image_size",
    "data.chunk_frames",
    "data.memory_stride_frames",
    "data.batch_size",
    "train.lr",
    "train.ema_warmup_offset",
    "train.val_batches",
    "train.num_nodes",
    "train.log_every_steps",
    "train.val_every_steps",
}
FRACTIONS = {  # a probability or a share: in [0, 1]
    "data.revisit_ratio",
    "data.val_fraction",
    "data.revisit_min_overlap",
    "train.min_lr_ratio",
    "train.adam_beta1",
    "train.adam_beta2",
    "train.ema_decay",
    "train.p_drop_working",
    "train.p_drop_episodic",
    "train.p_drop_spatial",
    "train.p_drop_text",
    "train.p_cold_start",
    "train.p_independent",
    "memory.carve_factor",
    "memory.keyframe_novelty_overlap",
    "memory.retrieve_min_overlap",
}
# kept by --quick: a NaN, a zero and a negative number where each makes no sense
ALWAYS = {("memory.voxel_size_m", "nan"), ("data.batch_size", "0"), ("memory.max_points", "-1")}
NUMBER_VALUES = [
    "nan",
    "inf",
    "-inf",
    "1e400",
    "-1",
    "-0.5",
    "0",
    "1e308",
    str(2**63),
    str(2**64),
    "abc",
    "null",
    "[]",
    "???",
    "${",
]
TEXT_VALUES = [
    "null",
    "[]",
    "{}",
    "???",
    "${",
    "${nope.x}",
    "${oc.env:HOME}",
    "'a\tb'",
    "5",
    "true",
    "x" * 100_000,
    "a\udcffb",
    "a\x00b",
    "'${oc.decode:[1,2]}'",
    "!!python/name:os.system",
]
BOOL_VALUES = ["maybe", "2", "null", "[]", "yes", "'true'", "1", "???"]
LIST_VALUES = ["5", "x", "[a, b]", "[-1]", "[0]", "[nan]", "[1e400]", "{}", "null", "[[1]]", "???"]
ANY_VALUES = ["[]", "{}", "-1", "nan", "null", "cuda:x", "???"]


def config_fields():
    """(section, name, type, schema name) for every setting of both root configs."""
    import dataclasses
    import typing

    from worldmem import config as C

    classes = {
        "sample": C.SampleConfig,
        "server": C.ServerConfig,
        "actions": C.ActionConfig,
        "model": C.ModelConfig,
        "memory": C.MemoryConfig,
        "data": C.DataConfig,
        "train": C.TrainConfig,
        "backbone": C.BackboneConfig,
    }
    for section, cls in classes.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            schema = "sample" if section in SAMPLE_SECTIONS else "train"
            yield section, f.name, hints[f.name], schema


def _type_kind(t) -> str:
    text = str(t)
    if t is bool:
        return "bool"
    if t in (int, float) or text in ("int | None", "float | None"):
        return "number"
    if t is str or text == "str | None":
        return "text"
    if text.startswith("list"):
        return "list"
    return "any"


def value_problem(key: str, value) -> str:
    """What is wrong with an accepted setting ``key`` = ``value`` ('' when nothing)."""
    if isinstance(value, list):
        for v in value:
            p = value_problem(key, v)
            if p:
                return f"element {v!r}: {p}"
        return ""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text that is not valid Unicode"
        if "\0" in value:
            return "a NUL character"
        if key == "sample.device" and not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            return "not a device"
        return ""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return "not finite"
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return "beyond 64-bit integers"
    if isinstance(value, int | float):
        if value < 0 and key not in SIGNED:
            return "negative"
        if value == 0 and key in ZERO_BAD:
            return "zero"
        if key in FRACTIONS and value > 1:
            return "above 1"
    return ""


@runner
def config_override(ctx: Context, folder: Path, schema: str, overrides: tuple, key: str) -> str:
    """``load_config`` with ``overrides``; accepted values of ``key`` must make sense."""
    from worldmem.config import ConfigError, SampleRootConfig, TrainRootConfig, load_config

    root = SampleRootConfig if schema == "sample" else TrainRootConfig
    with guarded(folder, allow=lambda *a: False):
        cfg = refused_on(lambda: load_config(root, [], list(overrides)), ConfigError)
    if key:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        problem = value_problem(key, value)
        if problem:
            raise Invalid(f"{key} = {short(value, 40)}: {problem}")
        return f"{key} = {short(value, 40)}"
    return "accepted"


@runner
def config_files(
    ctx: Context, folder: Path, schema: str, files: dict, load: tuple, overrides: tuple = ()
) -> str:
    """``load_config`` on YAML files written into the case folder."""
    from worldmem.config import ConfigError, SampleRootConfig, TrainRootConfig, load_config

    for name, spec in files.items():
        if isinstance(spec, tuple) and spec[0] == "link":
            spec = ("link", resolve_link_target(ctx, folder, spec[1]))
        place(folder / name, spec)
    root = SampleRootConfig if schema == "sample" else TrainRootConfig
    paths = [folder / name for name in load]
    with guarded(folder, allow=lambda *a: False):
        cfg = refused_on(lambda: load_config(root, paths, list(overrides)), ConfigError)
    for section, name, _, s in config_fields():
        if s == schema:
            key = f"{section}.{name}"
            problem = value_problem(key, getattr(getattr(cfg, section), name))
            if problem:
                raise Invalid(f"{key}: {problem}")
    return "accepted"


def cases_config(rng: random.Random) -> list[Case]:
    cases = []
    for section, name, t, schema in config_fields():
        kind = _type_kind(t)
        values = {
            "number": NUMBER_VALUES,
            "text": TEXT_VALUES,
            "bool": BOOL_VALUES,
            "list": LIST_VALUES,
            "any": ANY_VALUES,
        }[kind]
        key = f"{section}.{name}"
        for v in values:
            ov = f"{key}={v}"
            expect = (re.escape(name), re.escape(key))
            cases.append(
                Case(
                    "config overrides",
                    f"{key}={short(v, 30)}",
                    "config_override",
                    (schema, (ov,), key),
                    expect,
                    always=(key, v) in ALWAYS,
                    detail=short(ov),
                )
            )
    syntax = [
        "no_equals",
        "=5",
        "sample.steps",
        "sample..steps=1",
        "sample.steps==1",
        "+sample.new=1",
        "~sample.steps",
        "sample.steps=[1",
        "sample.steps={",
        "sample=5",
        "sample=[1]",
        "sample=null",
        "sample.steps=!!python/object/apply:os.system [echo]",
        "sample.steps=&a 5",
        "sample.steps=*a",
        "sample.steps=1\n---\n2",
        "sample.steps=- 1",
        "sample.nope=1",
        "nope.steps=1",
        "sample.steps.deeper=1",
        "sample.prompt=${",
        "sample.prompt=${a",
        "sample.prompt=${sample.prompt}",
        "sample.prompt=${oc.create:{a: 1}}",
        "server.allowed_origins=[javascript:alert(1)]",
        "server.allowed_origins=[http://a/b]",
        "server.allowed_origins=5",
        "sample.memory=most",
        "sample.device=tpu",
        "sample.device=cuda:x",
        "sample.device=cpu ",
        "sample.device=CUDA",
        "sample.device=",
        "sample.st\u00e9ps=1",
        "sample.steps=\t5",
        "sample.steps=5\t# tab",
        "sample.steps=1:2",
        "sample.steps=0o17",
        "sample.steps=1e3",
        "sample.steps=+5",
        "sample.steps=' 5'",
        "sample.steps=" + "9" * 5000,
        "sample.steps=[" * 3000,
        "sample.prompt=\x00",
        "sample.prompt=\udcff",
        "server.port=-1",
        "server.port=65536",
        "server.host=",
        "actions.max_pitch_deg=nan",
        "sample.fps=1e400",
    ]
    for ov in syntax:
        cases.append(
            Case(
                "config overrides",
                f"syntax: {short(ov, 40)}",
                "config_override",
                ("sample", (ov,), ""),
                (r"override", r"[A-Z][a-z]+Config\.\w+", r"full_key: \w+\.\w+"),
                detail=short(ov),
            )
        )
    cases += _yaml_cases()
    return cases


def _yaml_cases() -> list[Case]:
    big = "sample:\n  prompt: '" + "x" * (1 << 20) + "'\n"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
    )
    files = {
        "syntax error": "sample:\n  steps: [1\n",
        "bad indentation": "sample:\n    steps: 1\n  fps: 2\n",
        "tab indentation": "sample:\n\tsteps: 1\n",
        "tab in a value": "sample:\n  prompt: a\tb\n",
        "duplicate top key": "sample:\n  steps: 1\nsample:\n  fps: 2\n",
        "duplicate nested key": "sample:\n  steps: 1\n  steps: 2\n",
        "python tag": "sample:\n  steps: !!python/object/apply:os.system [echo hi]\n",
        "binary tag": "sample:\n  prompt: !!binary aGVsbG8=\n",
        "custom tag": "sample:\n  prompt: !secret x\n",
        "str tag": "sample:\n  prompt: !!str 5\n",
        "two documents": "sample:\n  steps: 1\n---\nsample:\n  steps: 2\n",
        "document end then text": "sample:\n  steps: 1\n...\ngarbage: [\n",
        "top-level list": "- sample\n- steps\n",
        "top-level scalar": "just text\n",
        "top-level number": "5\n",
        "empty file": "",
        "only a comment": "# nothing\n",
        "null document": "null\n",
        "include: [5]": "include: [5]\nsample:\n  steps: 1\n",
        "include: null": "include: null\n",
        "include: {}": "include: {}\n",
        "include: ''": "include: ''\n",
        "include: [[a]]": "include: [[a.yaml]]\n",
        "include a missing file": "include: [missing.yaml]\n",
        "include itself": "include: [config.yaml]\n",
        "include cycle": "include: [other.yaml]\n",
        "include /dev/zero": "include: [/dev/zero]\n",
        "include a folder": "include: [sub]\n",
        "include /etc/passwd": "include: [/etc/passwd]\n",
        "include a link to a FIFO": "include: [fifo.yaml]\n",
        "alias bomb": bomb,
        "anchor and alias": "a: &x 1\nsample:\n  steps: *x\n",
        "merge key": "base: &b {steps: 1}\nsample:\n  <<: *b\n",
        "???": "sample:\n  steps: ???\n",
        "??? in a list": "server:\n  allowed_origins: [???]\n",
        "unterminated ${": "sample:\n  prompt: ${sample.steps\n",
        "interpolation to nowhere": "sample:\n  prompt: ${nope.x}\n",
        "interpolation cycle": (
            "sample:\n  prompt: ${sample.checkpoint}\n  checkpoint: ${sample.prompt}\n"
        ),
        "env resolver": "sample:\n  steps: ${oc.env:NOPE_NOT_SET}\n",
        "bad device": "sample:\n  device: gpu0\n",
        "device with a newline": 'sample:\n  device: "cpu\\n"\n',
        "zero fps": "sample:\n  fps: 0\n",
        "negative steps": "sample:\n  steps: -3\n",
        "NaN guidance": "sample:\n  guidance_scale: .nan\n",
        "inf timeout": "server:\n  idle_timeout_s: .inf\n",
        "1e400 port": "server:\n  port: 1e400\n",
        "section is a list": "sample: [1, 2]\n",
        "section is a number": "sample: 5\n",
        "section is null": "sample: null\n",
        "unknown section": "nope:\n  x: 1\n",
        "unknown key": "sample:\n  nope: 1\n",
        "dotted key": "sample.steps: 3\n",
        "number key": "1: x\n",
        "null key": "~: x\n",
        "boolean key": "sample:\n  true: 1\n",
        "list key": "? [a, b]\n: 1\n",
        "deep nesting": "sample:\n  prompt: " + "[" * 10_000 + "]" * 10_000 + "\n",
        "control character": "sample:\n  prompt: a\x07b\n",
        "NUL byte": "sample:\n  prompt: a\x00b\n",
        "not UTF-8": b"sample:\n  prompt: \xff\xfe\n",
        "UTF-8 BOM": b"\xef\xbb\xbfsample:\n  steps: 2\n",
        "UTF-16": "sample:\n  steps: 2\n".encode("utf-16"),
        "over 1 MiB": big,
        "a 100k-character key": "k" * 100_000 + ": 1\n",
        "allowed_origins not a list": "server:\n  allowed_origins: http://a.b\n",
        "allowed_origins path": "server:\n  allowed_origins: ['http://a.b/x']\n",
        "allowed_origins script": "server:\n  allowed_origins: ['javascript:alert(1)']\n",
    }
    extra = {
        "include cycle": {"other.yaml": "include: [config.yaml]\n"},
        "include a folder": {"sub": ("dir",)},
        "include a link to a FIFO": {"fifo.yaml": ("fifo",)},
    }
    cases = []
    for name, text in files.items():
        spec = {"config.yaml": text, **extra.get(name, {})}
        cases.append(
            Case(
                "config files",
                name,
                "config_files",
                ("sample", spec, ("config.yaml",)),
                (
                    r"config\.yaml|other\.yaml|missing\.yaml|passwd|zero|sub|fifo",
                    r"[A-Z][a-z]+Config\.\w+",
                    r"full_key: \w+\.\w+",
                ),
                always=name in ("alias bomb", "include /dev/zero"),
                detail=short(text),
            )
        )
    links = {
        "config is /dev/zero": {"config.yaml": ("link", "/dev/zero")},
        "config is a FIFO": {"config.yaml": ("fifo",)},
        "config is a folder": {"config.yaml": ("dir",)},
        "config is missing": {},
        "config is a dangling link": {"config.yaml": ("link", "CASE/nowhere")},
        "config is a link loop": {"config.yaml": ("link", "CASE/config.yaml")},
    }
    for name, spec in links.items():
        cases.append(
            Case(
                "config files",
                name,
                "config_files",
                ("sample", spec, ("config.yaml",)),
                (r"config\.yaml",),
                always=name == "config is a FIFO",
                detail=repr(spec),
            )
        )
    for preset in ("model/tiny.yaml", "train/tiny.yaml"):  # a real preset with one edit
        text = (REPO / "configs" / preset).read_text()
        for i, (old, new) in enumerate(
            [(":", "::"), ("\n", "\n\t"), ("  ", " "), ("0", "nan"), ("1", "-1"), ("2", "0")]
        ):
            spec = {"config.yaml": text.replace(old, new, 1), "base.yaml": ""}
            if "include" in text:
                spec = {
                    "config.yaml": text.replace("include:", "include_gone:").replace(old, new, 1)
                }
            cases.append(
                Case(
                    "config files",
                    f"{preset} edit {i}: {old!r} -> {new!r}",
                    "config_files",
                    ("train", spec, ("config.yaml",)),
                    (r"config\.yaml",),
                    detail=f"{preset}: {old!r} -> {new!r}",
                )
            )
    return cases


# ---- the command lines that read configs -----------------------------------------------------


@runner
def config_cli(ctx: Context, folder: Path, argv: tuple, files: dict) -> str:
    """A command line (sample.py, train.py, -m worldmem.cli) with hostile configs; it must
    refuse with one message line and write nothing."""
    for name, spec in files.items():
        build(folder / name, spec, ctx, folder)
    args = [a.replace("CASE", str(folder)).replace("REPO", str(REPO)) for a in argv]
    # a training run may make its own folder (train.out_dir=CASE/run) before it fails
    with guarded(folder, allow=lambda path, how, accepted: how == "added" and under(path, "run")):
        code, stdout, stderr = run_cli(args, folder)
        return cli_outcome(code, stdout, stderr)


def _fill(text: str, values: dict) -> str:
    for k, v in values.items():
        text = text.replace("{" + k + "}", v)
    return text


def cases_config_cli(rng: random.Random) -> list[Case]:
    sample = str(REPO / "sample.py")
    train = str(REPO / "train.py")
    explore = ("-m", "worldmem.cli", "explore")
    ok_ckpt = "sample.checkpoint=CASE/none"
    programs = {"sample.py": (sample, ok_ckpt), "train.py": (train,), "explore": explore}
    config = ("--config", "CASE/c.yaml")
    # name -> (files, arguments, what the message must name); {s} is the program's section
    bad = {
        "syntax error": ({"c.yaml": "{s}:\n  x: [1\n"}, config, r"c\.yaml, line 3"),
        "tabs": ({"c.yaml": "{s}:\n\tx: 1\n"}, config, r"c\.yaml, line 2"),
        "alias bomb": ({"c.yaml": "a: &a [x, x]\nb: &b [*a, *a]\n"}, config, r"c\.yaml.*alias"),
        "/dev/zero config": ({}, ("--config", "/dev/zero"), r"/dev/zero"),
        "missing config": ({}, ("--config", "CASE/nope.yaml"), r"nope\.yaml"),
        "include: [5]": ({"c.yaml": "include: [5]\n"}, config, r"c\.yaml: include"),
        "unknown key": ({}, ("{s}.nope=1",), r"'{s}\.nope'"),
        "??? value": ({}, ("{k}=???",), r"'{k}' is '\?\?\?'"),
        "unterminated ${": ({}, ("{t}=${",), r"override '{t}="),
        "not key=value": ({}, ("steps",), r"override 'steps'"),
        "bad device": ({}, ("{d}",), r"device|accelerator"),
        "NaN limit": ({}, ("{nan}",), r"\.{nan_name}"),
        "zero limit": ({}, ("{zero}",), r"\.{zero_name}"),
        "negative limit": ({}, ("memory.max_points=-1",), r"max_points"),
        "lone surrogate": ({}, ("{t}=a\udcffb",), r"override '{t}=|not valid"),
        "--port not a number": ({}, ("--port", "http"), r"--port"),
        "--port out of range": ({}, ("--port", "70000"), r"port"),
    }
    fill = {
        "sample.py": dict(
            s="sample",
            k="sample.steps",
            t="sample.prompt",
            d="sample.device=tpu",
            nan="server.max_messages_per_s=nan",
            nan_name="max_messages_per_s",
            zero="server.max_sessions=0",
            zero_name="max_sessions",
        ),
        "train.py": dict(
            s="train",
            k="train.lr",
            t="train.out_dir",
            d="train.devices=[]",
            nan="train.lr=nan",
            nan_name="lr",
            zero="data.batch_size=0",
            zero_name="batch_size",
        ),
    }
    fill["explore"] = fill["sample.py"]
    cases = []
    for prog, base in programs.items():
        f = fill[prog]
        for name, (files, args, expect) in bad.items():
            if (prog == "train.py" and args[0] == "--port") or (
                prog != "train.py" and args[0].startswith("memory.")
            ):
                continue
            files = {k: v.replace("{s}", f["s"]) for k, v in files.items()}
            args = tuple(_fill(a, f) for a in args)
            expect = expect.replace("{s}", f["s"]).replace("{k}", re.escape(f["k"]))
            expect = expect.replace("{t}", re.escape(f["t"])).replace("{nan_name}", f["nan_name"])
            expect = expect.replace("{zero_name}", f["zero_name"])
            cases.append(
                Case(
                    "command lines",
                    f"{prog}: {name}",
                    "config_cli",
                    ((*base, *args), files),
                    (expect,),
                    cli=True,
                    detail=" ".join(args),
                )
            )
    # accepted configs that then fail on their input
    cases.append(
        Case(
            "command lines",
            "train.py: a data root that does not exist",
            "config_cli",
            ((train, "data.root=CASE/none", "train.out_dir=CASE/run"), {}),
            (r"none/manifest\.jsonl",),
            cli=True,
            detail="data.root=<missing>",
        )
    )
    data = {"data": ("synthetic",)}  # a dataset that reads, so the run gets to its next input
    tiny = (
        train,
        "--config",
        "REPO/configs/train/tiny.yaml",
        "data.root=CASE/data",
        "train.out_dir=CASE/run",
        "train.max_steps=1",
        "data.num_workers=0",
    )
    cases.append(
        Case(
            "command lines",
            "train.py: init_from that does not exist",
            "config_cli",
            ((*tiny, "train.init_from=CASE/nope"), data),
            (r"nope",),
            cli=True,
            detail="train.init_from=<missing>",
        )
    )
    cases.append(
        Case(
            "command lines",
            "train.py: resume from a garbage checkpoint",
            "config_cli",
            ((*tiny, "train.resume=CASE/x.ckpt"), {**data, "x.ckpt": b"garbage"}),
            (r"x\.ckpt",),
            cli=True,
            detail="train.resume=<garbage>",
        )
    )
    cases.append(
        Case(
            "command lines",
            "train.py: resume from a checkpoint whose unpickling runs code",
            "config_cli",
            ((*tiny, "train.resume=CASE/x.ckpt"), {**data, "x.ckpt": ("ckpt_runs_code", "ran")}),
            (r"x\.ckpt is not a checkpoint this project wrote",),
            cli=True,
            always=True,  # a refusal that comes after the code ran is data loss: CASE/ran
            detail="train.resume=<pickle that writes a file>",
        )
    )
    cases.append(
        Case(
            "command lines",
            "explore: checkpoint folder with garbage pipeline.json",
            "config_cli",
            ((*explore, "sample.checkpoint=CASE/ck"), {"ck/pipeline.json": "{"}),
            (r"pipeline\.json",),
            cli=True,
            detail="sample.checkpoint=<broken>",
        )
    )
    return cases
