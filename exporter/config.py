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
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from exporter.health.config import AuthConfig, SystemConfig
from exporter.sources import SOURCE_TYPES
from exporter.sources.base import MIN_INTERVAL, Model, OwnValidators, SourceConfig
from exporter.web.shims import ShimsConfig

DEFAULT_PORT = 9312  # the list marks it UNALLOCATED (kept from Sphinx); every other 91xx-99xx is held
MAX_FILE_BYTES = 1 << 20  # a config is a few KB; a megabyte is generous and bounds everything below
MAX_STRING = 64 * 1024  # characters of one value, after interpolation
MAX_EXPANDED = 4 * MAX_FILE_BYTES  # characters of all values together, after interpolation
MAX_DEPTH = 32  # levels of nesting; the schema itself goes about eight deep
MAX_VALUES = 100_000  # values after alias expansion: a YAML alias bomb is refused, not expanded
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# each entry validated by its type's model alone, imported when a config names its type (see OwnValidators)
SourceUnion = Annotated[SourceConfig, OwnValidators("type", {name: t.config for name, t in SOURCE_TYPES.items()})]


class ExporterConfig(Model):
    """The whole config file."""

    listen: str = f"0.0.0.0:{DEFAULT_PORT}"
    # a second listener for /metrics, /healthz and /readyz only, on a thread of its own: point
    # Prometheus at it and no flood of connections on `listen` can delay the scrape (web/scrape.py)
    scrape_listen: str | None = None
    shard: str = "0/1"
    revision: str = "unknown"
    sources: list[SourceUnion] = Field(min_length=1)
    # validated by their own models when given (the config's validator does not inline them), and
    # their defaults built without a validator: a config without them builds none
    systems: list[Annotated[SystemConfig, OwnValidators()]] = []
    shims: Annotated[ShimsConfig, OwnValidators()] = ShimsConfig.model_construct()
    auth: Annotated[AuthConfig, OwnValidators()] = AuthConfig.model_construct()

    @field_validator("listen", "scrape_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
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

    def lines(self, limit: int = 50) -> list[str]:
        """One line per problem, the first `limit` of them (40,000 misspelled keys are not 40,000 lines)."""
        out = []
        for p in self.problems[:limit]:
            where = f"{self.filename}:{p.line}" if p.line else self.filename
            out.append(f"{where}: {p.location or '(top level)'}: {p.message}")
        if len(self.problems) > limit:
            out.append(f"{self.filename}: ... and {len(self.problems) - limit} more problems")
        return out


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> ExporterConfig:
    """Read, interpolate and validate a config file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(str(path), [Problem("", f"cannot read the file: {err.strerror}")]) from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(str(path), [Problem("", f"not UTF-8 text (byte 0x{raw[err.start]:02x})", line)]) from None
    return parse_config(text, str(path), env)


def parse_config(text: str, filename: str = "<config>", env: Mapping[str, str] | None = None) -> ExporterConfig:
    """Validate config text; raises ConfigError naming file, key path and reason."""
    env = os.environ if env is None else env
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(filename, [Problem("", f"the file is over {MAX_FILE_BYTES // 1024} KiB: not a config")])
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        bounded(root, filename)  # before constructing: an alias bomb or a 10 MB string stops here
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError(filename, [Problem("", f"not valid YAML: {getattr(err, 'problem', err)}", line)]) from None
    except RecursionError:
        raise ConfigError(filename, [Problem("", f"nested deeper than {MAX_DEPTH} levels")]) from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(filename, [Problem("", "the file must be a mapping of keys")])
    problems: list[Problem] = []
    data = _interpolate(data, env, (), problems, root, {}, [MAX_EXPANDED])
    if problems:
        raise ConfigError(filename, problems)
    try:
        config = ExporterConfig.model_validate(data)
    except ValidationError as err:
        index = _Index()
        raise ConfigError(filename, [_problem(e, root, index) for e in err.errors()]) from None
    sources: list[SourceConfig] = list(config.sources)
    broken = cross_references(config) + [
        (("sources", i, "interval"), f"{s.interval}s is under the minimum interval of {MIN_INTERVAL}s")
        for i, s in enumerate(sources) if s.interval < MIN_INTERVAL]
    if broken:
        raise ConfigError(filename, [Problem(_dotted(p), m, _line(root, p)) for p, m in broken])
    if config.shard == "auto":
        try:
            config = config.model_copy(update={"shard": resolve_shard(env)})
        except ValueError as err:
            raise ConfigError(filename, [Problem("shard", str(err), _line(root, ("shard",)))]) from err
    return config


def bounded(root: yaml.Node | None, filename: str) -> None:
    """Refuse a node graph that is too deep, expands (through aliases) to too many values, or holds an
    over-long string. Linear in the graph: an aliased node is measured once, however often it is used."""
    size: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being measured: meeting one again is a cycle
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)] if root is not None else []
    while stack:
        node, level, done = stack.pop()
        if id(node) in size and not done:
            continue
        if id(node) in open_ and not done:
            raise ConfigError(filename, [Problem("", "an alias refers to the value that contains it",
                                                 node.start_mark.line + 1)])
        if level > MAX_DEPTH:
            raise ConfigError(filename, [Problem("", f"nested deeper than {MAX_DEPTH} levels",
                                                 node.start_mark.line + 1)])
        children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else (
            node.value if isinstance(node, yaml.SequenceNode) else [])
        if isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_STRING:
            raise ConfigError(filename, [Problem("", f"a value of {len(node.value)} characters (the limit is "
                                                 f"{MAX_STRING})", node.start_mark.line + 1)])
        if not done:
            open_.add(id(node))
            stack.append((node, level, True))
            stack.extend((c, level + 1, False) for c in children if id(c) not in size)
            continue
        open_.discard(id(node))
        size[id(node)] = 1 + sum(size.get(id(c), 0) for c in children)
        if size[id(node)] > MAX_VALUES:
            raise ConfigError(filename, [Problem("", f"aliases expand to more than {MAX_VALUES} values",
                                                 node.start_mark.line + 1)])


def _interpolate(value: Any, env: Mapping[str, str], path: tuple[Any, ...], problems: list[Problem],
                 root: yaml.Node | None, seen: dict[int, Any], budget: list[int]) -> Any:
    """`${VAR}` in every string; a container shared through a YAML alias is interpolated once.

    Sizes are checked while expanding (`budget` holds the characters the whole config may still
    take): `${BIG}` written 20,000 times stops at the first piece over a bound instead of building
    gigabytes and measuring them afterwards."""
    if isinstance(value, dict | list):
        if id(value) in seen:
            return seen[id(value)]
        if isinstance(value, dict):
            out: Any = {k: _interpolate(v, env, (*path, k), problems, root, seen, budget) for k, v in value.items()}
        else:
            out = [_interpolate(v, env, (*path, i), problems, root, seen, budget) for i, v in enumerate(value)]
        seen[id(value)] = out
        return out
    if not isinstance(value, str) or "$" not in value:
        return value
    pieces: list[str] = []
    size, at = 0, 0
    for match in _VAR.finditer(value):
        name, default = match.group(1), match.group(2)
        if match.group(0) == "$$":
            piece = "$"
        elif name in env and env[name] != "":
            piece = env[name]
        elif default is not None:
            piece = default
        else:
            problems.append(Problem(_dotted(path), f"environment variable {name} is not set", _line(root, path)))
            piece = ""
        size += match.start() - at + len(piece)
        if size > MAX_STRING or size > budget[0]:
            what = (f"over {MAX_STRING} characters after interpolation" if size > MAX_STRING else
                    f"the config is over {MAX_EXPANDED} characters after interpolation")
            problems.append(Problem(_dotted(path), f"{what} (stopped at ${{{name}}})" if name else what,
                                    _line(root, path)))
            return ""
        pieces += (value[at:match.start()], piece)
        at = match.end()
    text = "".join(pieces) + value[at:]
    if len(text) > MAX_STRING:
        problems.append(Problem(_dotted(path), f"over {MAX_STRING} characters after interpolation",
                                _line(root, path)))
        return ""
    budget[0] -= len(text)
    return text


class _Index:
    """Children of mapping nodes by key, built once per node, so locating N errors is linear in N."""

    def __init__(self) -> None:
        self._keys: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}
        self._scalars: dict[int, set[str]] = {}

    def entry(self, node: yaml.MappingNode, step: Any) -> tuple[yaml.Node, yaml.Node] | None:
        keys = self._keys.get(id(node))
        if keys is None:
            keys = {}
            for key, value in node.value:
                keys.setdefault(str(key.value), (key, value))
            self._keys[id(node)] = keys
        return keys.get(str(step))

    def scalars(self, node: yaml.Node | None) -> set[str]:
        """The scalar values of a mapping (where a discriminator's tag lives), computed once per node."""
        if id(node) not in self._scalars:
            self._scalars[id(node)] = _scalar_values(node)
        return self._scalars[id(node)]


def _problem(error: Any, root: yaml.Node | None, index: _Index | None = None) -> Problem:
    index = index or _Index()
    loc = tuple(error["loc"])
    path = _real_path(loc, root, index)
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (misspelled?)"
    elif error["type"] == "missing":
        message = "required key is missing"
    message = message.removeprefix("Value error, ")
    return Problem(_dotted(path), message, _line(root, path, index))


def _real_path(loc: tuple[Any, ...], root: yaml.Node | None, index: _Index) -> tuple[Any, ...]:
    """Drop pydantic's union tags from a location: a tag is the value of the mapping's discriminator
    (`type: redis`, `layout: list`, `preset: generic`), so a step that is not a key of the mapping but
    one of its scalar values is skipped."""
    node, kept = root, []
    for step in loc:
        child = _child(node, step, index)
        if child is None and isinstance(step, str) and step in index.scalars(node):
            continue
        kept.append(step)
        node = child
    return tuple(kept)


def _scalar_values(node: yaml.Node | None) -> set[str]:
    if not isinstance(node, yaml.MappingNode):
        return set()
    return {value.value for _, value in node.value if isinstance(value, yaml.ScalarNode)}


def _child(node: yaml.Node | None, step: Any, index: _Index) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        entry = index.entry(node, step)
        child: yaml.Node | None = entry[1] if entry else None
        return child
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
        item: yaml.Node = node.value[step]
        return item
    return None


def _line(root: yaml.Node | None, path: tuple[Any, ...], index: _Index | None = None) -> int | None:
    node, line = root, None
    index = index or _Index()
    for step in path:
        if isinstance(node, yaml.MappingNode):
            entry = index.entry(node, step)
            if entry is None:
                return line or (node.start_mark.line + 1)
            line, node = entry[0].start_mark.line + 1, entry[1]
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
