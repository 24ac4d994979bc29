"""Reading configs: strict YAML files with ``include:`` lists, ``key=value`` overrides, and
the merge onto a schema, each failure a ``ConfigError`` that names the file and line, the
override or the key (``worldmem.config`` holds the schemas and ``load_config``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_yaml_loader
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from worldmem.text_check import invalid_unicode

__all__ = [
    "ConfigError",
    "MAX_CONFIG_BYTES",
    "merge",
    "override",
    "to_object",
    "yaml_with_includes",
]

MAX_CONFIG_BYTES = 1 << 20  # a YAML config file larger than this is refused unread


class ConfigError(ValueError):
    """A config file or override that does not fit its schema."""


def merge(base: DictConfig, other: Any, where: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except (ConfigKeyError, ValidationError) as e:
        key = getattr(e, "full_key", None) or getattr(e, "key", None)
        if not key:  # e.g. a number where a section belongs
            raise ConfigError(f"{where}: {str(e).splitlines()[0]}") from None
        parent = key.rsplit(".", 1)[0] if "." in str(key) else ""
        node = OmegaConf.select(base, parent) if parent else base
        valid = sorted(node.keys()) if isinstance(node, DictConfig) else []
        raise ConfigError(
            f"{where}: bad config key or value '{key}': {str(e).splitlines()[0]}. "
            f"Valid keys{' under ' + parent if parent else ''}: {', '.join(map(str, valid))}"
        ) from None
    except OmegaConfBaseException as e:  # e.g. a list where a section belongs, a bad ${...}
        raise ConfigError(f"{where}: {str(e).splitlines()[0]}") from None


class _StrictLoader(get_yaml_loader()):
    """OmegaConf's YAML loader (same numbers, refuses duplicate keys) that also refuses
    anchors and aliases (``&a``, ``*a``: a few hundred bytes of nested aliases expand to
    billions of values) and explicit tags (``!!python/...``, ``!!binary``): a config is
    plain mappings, lists and scalars."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "YAML anchors and aliases (&name, *name) are not allowed in configs",
                event.start_mark,
            )  # fmt: skip
        if getattr(event, "tag", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, f"YAML tags ({event.tag}) are not allowed in configs",
                event.start_mark,
            )  # fmt: skip
        return super().compose_node(parent, index)


def _parse_yaml(text: str, where: str) -> Any:
    """``text`` as one YAML document (None when empty), or a ``ConfigError`` naming
    ``where`` and the line and column of the problem."""
    loader = None
    try:
        loader = _StrictLoader(text)  # its reader refuses NUL, control and lone surrogates
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = "; ".join(str(x) for x in (e.context, e.problem) if x)
        raise ConfigError(f"{where}{at}: {what}") from None
    except yaml.YAMLError as e:  # e.g. a control character in the text
        raise ConfigError(f"{where}: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{where}: {e}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _refuse_missing(data: Any, where: str, key: str = "") -> None:
    """OmegaConf's missing value ``???`` would be merged as 'keep the default' without a
    word: refuse it, keys that are not names, and text that no file or model can take (a NUL
    character, a lone surrogate from an escape such as ``"\\ud800"``)."""
    if isinstance(data, dict):
        for k, v in data.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where}: key {k!r} under '{key or '<top>'}' is not a name")
            _refuse_missing(v, where, f"{key}.{k}" if key else k)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _refuse_missing(v, where, f"{key}[{i}]")
    elif data == "???":
        raise ConfigError(f"{where}: '{key}' is '???' (no value): give it a value or leave it out")
    elif isinstance(data, str):
        if "\0" in data:
            raise ConfigError(f"{where}: '{key}' contains a NUL character")
        problem = invalid_unicode(data)
        if problem is not None:
            raise ConfigError(f"{where}: '{key}' is {problem}: {data!r}")


def _read_yaml(path: Path) -> dict:
    """A config file's top-level mapping, checked: size, UTF-8, YAML, no missing values."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {size} bytes; a config file is at most {MAX_CONFIG_BYTES}")
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text (byte {e.start})") from None
    data = _parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of config sections at the top, got a {type(data).__name__}"
        )
    _refuse_missing(data, str(path))
    return data


def yaml_with_includes(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, Any]]:
    """A YAML file's contents preceded by those of the files its ``include:`` list names
    (paths relative to the file), recursively; later files override earlier ones."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"config include cycle at {path}")
    data = _read_yaml(path)
    includes = data.pop("include", [])
    includes = [includes] if isinstance(includes, str) else includes
    if not isinstance(includes, list) or not all(isinstance(i, str) and i for i in includes):
        raise ConfigError(
            f"{path}: include: expected a file name or a list of file names, got {includes!r}"
        )
    out = []
    for inc in includes:
        out += yaml_with_includes(path.parent / inc, (*seen, path.resolve()))
    return [*out, (path, data)]


_KEY_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*|\[\d+\])*")


def override(ov: str) -> DictConfig:
    """One ``key=value`` override as a config, its value parsed as YAML like a file's."""
    where = f"override '{ov}'"
    key, sep, value = ov.partition("=")
    if not sep:
        raise ConfigError(f"{where} is not of the form key=value")
    if not _KEY_RE.fullmatch(key.strip()):
        raise ConfigError(f"{where}: '{key}' is not a dotted config key (e.g. sample.steps)")
    _refuse_missing(_parse_yaml(value, where), where, key.strip())
    try:
        return OmegaConf.from_dotlist([ov])
    except (OmegaConfBaseException, yaml.YAMLError) as e:
        raise ConfigError(f"{where}: {str(e).splitlines()[0]}") from None


def to_object(cfg: DictConfig) -> Any:
    try:
        return OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as e:  # __post_init__ checks surface wrapped by OmegaConf
        cause = e.__cause__ or e
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(str(e)) from None
