"""Files source: directories, file counts, SHA-256 integrity, binaries on PATH, configured variables.

The config is a tree of named checks whose shape is the shape of the answer, so a block such as
the media-service seed's `pipeline`, `identities` or `integrations.tmdb` is written once in YAML
and read whole by the shim. Leaves and their values in `Reading.details`:

  {directory: PATH}                 true when PATH is a directory
  {path: PATH}                      true when PATH exists (a file, a model, a processor script)
  {glob: PATTERN, recursive: bool}  number of files matching PATTERN (`**` with recursive: true)
  {manifest: FILE, base: DIR}       {matched, total, ok}: files whose SHA-256 equals FILE's
                                    `sha256sum` lines, paths relative to DIR (default: FILE's dir)
  {binary: NAME}                    true when NAME is an executable on PATH
  {env: NAME}                       true when the variable is set and not empty (never its value)
  {const: VALUE}                    VALUE as given (e.g. `enabled: false`, `api_reachable: null`)

`Reading.details` is that tree (`details.pipeline.scripts_integrity.matched`, ...) plus `checks`,
a flat {dotted name: value} map. Hashes are cached by (path, size, mtime) and only recomputed
when a file changes.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag
from typing_extensions import TypeAliasType

from exporter.model import Reading, Sample
from exporter.sources.base import MetricDef, Model, Source, SourceConfig, SourceContext, SourceError

_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


class DirectoryCheck(Model):
    directory: str


class PathCheck(Model):
    path: str


class GlobCheck(Model):
    glob: str
    recursive: bool = False


class ManifestCheck(Model):
    manifest: str
    base: str | None = None


class BinaryCheck(Model):
    binary: str


class EnvCheck(Model):
    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConstCheck(Model):
    const: bool | int | float | str | None


def kind_of(leaf: Any) -> str:
    """The check kind of a leaf model, used as a label value."""
    return type(leaf).__name__.removesuffix("Check").lower()


KINDS: dict[str, type[Model]] = {"directory": DirectoryCheck, "path": PathCheck, "glob": GlobCheck,
                                 "manifest": ManifestCheck, "binary": BinaryCheck, "env": EnvCheck,
                                 "const": ConstCheck}


def _kind_tag(value: Any) -> str:
    """Which check a YAML mapping is: the first kind key with a scalar value, else a group of checks."""
    if isinstance(value, Model):
        return kind_of(value)
    if isinstance(value, dict):
        return next((k for k in KINDS if k in value and not isinstance(value[k], dict)), "group")
    return "group"


Leaf = DirectoryCheck | PathCheck | GlobCheck | ManifestCheck | BinaryCheck | EnvCheck | ConstCheck
Node = Annotated[
    Annotated[DirectoryCheck, Tag("directory")] | Annotated[PathCheck, Tag("path")]
    | Annotated[GlobCheck, Tag("glob")] | Annotated[ManifestCheck, Tag("manifest")]
    | Annotated[BinaryCheck, Tag("binary")] | Annotated[EnvCheck, Tag("env")] | Annotated[ConstCheck, Tag("const")]
    | Annotated["Tree", Tag("group")],
    Discriminator(_kind_tag),
]
Tree = TypeAliasType("Tree", dict[str, Node])  # a group of checks, nested as deep as the answer


class FilesConfig(SourceConfig):
    """A tree of named file-system and environment checks."""

    type: Literal["files"]
    checks: Tree = Field(min_length=1)


def parse_manifest(text: str) -> tuple[list[tuple[str, str]], int]:
    """`sha256sum` output -> [(hex digest, path)] and the number of unreadable lines (comments skipped)."""
    entries, bad = [], 0
    for line in text.splitlines():
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _SUM_LINE.match(line)
        if match:
            entries.append((match.group(1).lower(), match.group(2)))
        else:
            bad += 1
    return entries, bad


class FilesSource(Source):
    """Checks files, directories, binaries and environment variables on the exporter's host."""

    backend = "files"
    config_model = FilesConfig
    metrics = (
        MetricDef("jobqueue_files_check_ok", "1 if the check passed (directory, path or binary present, variable "
                  "set, manifest fully matched, glob matched at least one file).", ("check", "kind")),
        MetricDef("jobqueue_files_matched", "Files matching the check's glob pattern.", ("check",)),
        MetricDef("jobqueue_files_integrity_matched", "Files of the manifest whose SHA-256 matches.", ("check",)),
        MetricDef("jobqueue_files_integrity_expected", "Files listed in the manifest.", ("check",)),
    )

    def __init__(self, config: FilesConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        self.config: FilesConfig = config
        self._hashes: dict[str, tuple[int, int, str]] = {}  # path -> (size, mtime_ns, digest)

    async def collect(self) -> Reading:
        try:
            return await asyncio.to_thread(self._read)
        except OSError as err:
            raise SourceError(f"file check failed: {err}") from err

    def _read(self) -> Reading:
        samples: list[Sample] = []
        flat: dict[str, Any] = {}
        malformed = [0]
        seen: set[str] = set()
        tree = self._walk(self.config.checks, "", samples, flat, malformed, seen)
        self._hashes = {p: v for p, v in self._hashes.items() if p in seen}
        return Reading(samples=tuple(samples), malformed=malformed[0], details={**tree, "checks": flat})

    def _walk(self, node: dict[str, Any], prefix: str, samples: list[Sample], flat: dict[str, Any],
              malformed: list[int], seen: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, child in node.items():
            path = f"{prefix}{name}"
            if isinstance(child, dict):
                out[name] = self._walk(child, f"{path}.", samples, flat, malformed, seen)
                continue
            value = self._check(child, path, samples, malformed, seen)
            out[name] = flat[path] = value
        return out

    def _check(self, leaf: Any, name: str, samples: list[Sample], malformed: list[int], seen: set[str]) -> Any:
        kind = kind_of(leaf)
        value: Any
        if isinstance(leaf, ConstCheck):
            return leaf.const
        if isinstance(leaf, DirectoryCheck):
            value = ok = os.path.isdir(leaf.directory)
        elif isinstance(leaf, PathCheck):
            value = ok = os.path.exists(leaf.path)
        elif isinstance(leaf, BinaryCheck):
            value = ok = shutil.which(leaf.binary) is not None
        elif isinstance(leaf, EnvCheck):
            value = ok = bool(os.environ.get(leaf.env))
        elif isinstance(leaf, GlobCheck):
            value = sum(1 for p in glob.iglob(leaf.glob, recursive=leaf.recursive) if os.path.isfile(p))
            ok = value > 0
            samples.append(Sample("jobqueue_files_matched", (name,), value))
        else:
            value = self._integrity(leaf, malformed, seen)
            ok = value["ok"]
            samples.append(Sample("jobqueue_files_integrity_matched", (name,), value["matched"]))
            samples.append(Sample("jobqueue_files_integrity_expected", (name,), value["total"]))
        samples.append(Sample("jobqueue_files_check_ok", (name, kind), ok))
        return value

    def _integrity(self, leaf: ManifestCheck, malformed: list[int], seen: set[str]) -> dict[str, Any]:
        manifest = Path(leaf.manifest)
        try:
            entries, bad = parse_manifest(manifest.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            return {"matched": 0, "total": 0, "ok": False, "error": "manifest missing"}
        malformed[0] += bad
        base = Path(leaf.base) if leaf.base else manifest.parent
        matched = 0
        for digest, rel in entries:
            target = str(base / rel)
            seen.add(target)
            if self._digest(target) == digest:
                matched += 1
        return {"matched": matched, "total": len(entries), "ok": bool(entries) and matched == len(entries)}

    def _digest(self, path: str) -> str | None:
        """SHA-256 of a file, reused while its size and mtime stay the same; None when unreadable."""
        try:
            stat = os.stat(path)
        except OSError:
            return None
        cached = self._hashes.get(path)
        if cached and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return cached[2]
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            return None
        self._hashes[path] = (stat.st_size, stat.st_mtime_ns, digest.hexdigest())
        return digest.hexdigest()
