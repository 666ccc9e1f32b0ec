"""Loading the YAML config: `${VAR}` interpolation, validation, and errors written for people.

Every problem is reported as `file:line: key.path: reason`; a misspelled key is an error.
Secrets are interpolated from the environment or read from `*_file` keys and never printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from exporter.health.config import AuthConfig, ShimsConfig, SystemConfig
from exporter.sources import SOURCE_TYPES
from exporter.sources.base import Model, SourceConfig

DEFAULT_PORT = 9312  # the list marks it UNALLOCATED (kept from Sphinx); every other 91xx-99xx is held
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

SourceUnion = Annotated[
    Union[tuple(t.config_model for t in SOURCE_TYPES.values())],  # type: ignore[valid-type]  # noqa: UP007
    Field(discriminator="type"),
]


class ExporterConfig(Model):
    """The whole config file."""

    listen: str = f"0.0.0.0:{DEFAULT_PORT}"
    shard: str = "0/1"
    revision: str = "unknown"
    sources: list[SourceUnion] = Field(min_length=1)  # type: ignore[valid-type]
    systems: list[SystemConfig] = []
    shims: ShimsConfig = ShimsConfig()
    auth: AuthConfig = AuthConfig()

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("shard")
    @classmethod
    def _shard(cls, value: str) -> str:
        if value != "auto":  # resolved from the environment by parse_config
            parse_shard(value)
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> ExporterConfig:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}")
            seen.add(source.name)
        return self

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)

    def system(self, name: str) -> SystemConfig | None:
        return next((s for s in self.systems if s.name == name), None)


def cross_references(config: ExporterConfig) -> list[tuple[tuple[Any, ...], str]]:
    """(key path, reason) for every system or shim naming a source or system that does not exist."""
    sources = {s.name for s in config.sources}
    out: list[tuple[tuple[Any, ...], str]] = []
    seen: set[str] = set()
    for i, system in enumerate(config.systems):
        if system.name in seen:
            out.append((("systems", i, "name"), f"two systems are named {system.name!r}"))
        seen.add(system.name)
        for where, name in system.referenced_sources():
            if name not in sources:
                out.append((("systems", i, *_split(where)), f"unknown source {name!r}"))
    for key, shim in config.shims.bound():
        if config.system(shim.system) is None:
            out.append((("shims", key, "system"), f"unknown system {shim.system!r}"))
        for where, name in config.shims.sources_of(shim):
            if name not in sources:
                out.append((("shims", key, *_split(where)), f"unknown source {name!r}"))
    return out


def _split(where: str) -> tuple[Any, ...]:
    """`queues[2].source` -> ('queues', 2, 'source')."""
    out: list[Any] = []
    for part in where.split("."):
        name, _, index = part.partition("[")
        out.append(name)
        if index:
            out.append(int(index.rstrip("]")))
    return tuple(out)


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port`, `:port` or `[::1]:port` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def parse_shard(value: str) -> tuple[int, int]:
    """`i/N` with 0 <= i < N."""
    match = re.fullmatch(r"(\d+)/(\d+)", value.strip())
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise ValueError(f"shard must be i/N with 0 <= i < N, got {value!r}")
    return int(match.group(1)), int(match.group(2))


SHARDS_ENV = "JOBQUEUE_EXPORTER_SHARDS"


def resolve_shard(env: Mapping[str, str]) -> str:
    """`shard: auto` -> `i/N`: i is the ordinal at the end of the pod name (HOSTNAME, as a StatefulSet
    names its pods `name-0`, `name-1`, ...), N comes from JOBQUEUE_EXPORTER_SHARDS (the replicas)."""
    host = env.get("HOSTNAME", "")
    match = re.search(r"-(\d+)$", host)
    if not match:
        raise ValueError(f"shard auto needs HOSTNAME ending in -<ordinal> (a StatefulSet pod), got {host!r}")
    total = env.get(SHARDS_ENV, "")
    if not total.isdigit() or int(total) < 1:
        raise ValueError(f"shard auto needs {SHARDS_ENV} set to the number of replicas, got {total!r}")
    value = f"{int(match.group(1))}/{int(total)}"
    parse_shard(value)
    return value


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the config, located by key path and, when known, line."""

    location: str
    message: str
    line: int | None = None


class ConfigError(Exception):
    """The config cannot be used; `problems` says where and why."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        out = []
        for p in self.problems:
            where = f"{self.filename}:{p.line}" if p.line else self.filename
            out.append(f"{where}: {p.location or '(top level)'}: {p.message}")
        return out


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> ExporterConfig:
    """Read, interpolate and validate a config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(str(path), [Problem("", f"cannot read the file: {err.strerror}")]) from err
    return parse_config(text, str(path), env)


def parse_config(text: str, filename: str = "<config>", env: Mapping[str, str] | None = None) -> ExporterConfig:
    """Validate config text; raises ConfigError naming file, key path and reason."""
    env = os.environ if env is None else env
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError(filename, [Problem("", f"not valid YAML: {getattr(err, 'problem', err)}", line)]) from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(filename, [Problem("", "the file must be a mapping of keys")])
    problems: list[Problem] = []
    data = _interpolate(data, env, (), problems, root)
    if problems:
        raise ConfigError(filename, problems)
    try:
        config = ExporterConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(filename, [_problem(e, root) for e in err.errors()]) from err
    broken = cross_references(config)
    if broken:
        raise ConfigError(filename, [Problem(_dotted(p), m, _line(root, p)) for p, m in broken])
    if config.shard == "auto":
        try:
            config = config.model_copy(update={"shard": resolve_shard(env)})
        except ValueError as err:
            raise ConfigError(filename, [Problem("shard", str(err), _line(root, ("shard",)))]) from err
    return config


def _interpolate(value: Any, env: Mapping[str, str], path: tuple[Any, ...], problems: list[Problem],
                 root: yaml.Node | None) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*path, k), problems, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*path, i), problems, root) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        problems.append(Problem(_dotted(path), f"environment variable {name} is not set", _line(root, path)))
        return ""

    return _VAR.sub(replace, value)


def _problem(error: Any, root: yaml.Node | None) -> Problem:
    loc = tuple(error["loc"])
    path = _real_path(loc, root)
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (misspelled?)"
    elif error["type"] == "missing":
        message = "required key is missing"
    message = message.removeprefix("Value error, ")
    return Problem(_dotted(path), message, _line(root, path))


def _real_path(loc: tuple[Any, ...], root: yaml.Node | None) -> tuple[Any, ...]:
    """Drop pydantic's union tags from a location: a tag is the value of the mapping's discriminator
    (`type: redis`, `layout: list`, `preset: generic`), so a step that is not a key of the mapping but
    one of its scalar values is skipped."""
    node, kept = root, []
    for step in loc:
        child = _child(node, step)
        if child is None and isinstance(step, str) and step in _scalar_values(node):
            continue
        kept.append(step)
        node = child
    return tuple(kept)


def _scalar_values(node: yaml.Node | None) -> set[str]:
    if not isinstance(node, yaml.MappingNode):
        return set()
    return {value.value for _, value in node.value if isinstance(value, yaml.ScalarNode)}


def _child(node: yaml.Node | None, step: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(step):
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
        return node.value[step]
    return None


def _line(root: yaml.Node | None, path: tuple[Any, ...]) -> int | None:
    node, line = root, None
    for step in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(step):
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line or (node.start_mark.line + 1)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


DEFAULT_CONFIG = """
# Embedded default: the host, plus Laravel's `default` queue on the local Redis.
sources:
  - name: host
    type: system
    interval: 15s
  - name: redis
    type: redis
    url: redis://127.0.0.1:6379/0
    interval: 15s
    timeout: 5s
    queues:
      - layout: laravel
        queues: [default]
"""


def default_config() -> ExporterConfig:
    """The config used when no `--config` is given, so a new user sees metrics at once."""
    return parse_config(DEFAULT_CONFIG, "<embedded default>")
