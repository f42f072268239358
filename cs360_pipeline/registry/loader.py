"""Load and validate every ``provider.yml`` under the sources folder.

:func:`load_registry` is what the running pipeline uses: one broken provider file fails that
provider, with a problem that names the file and the key, and every other provider still loads.
:func:`load_providers` is the strict form for tools and tests: any problem raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from cs360_pipeline.registry import last_valid
from cs360_pipeline.registry.expressions import ExpressionRefused
from cs360_pipeline.registry.models import Provider
from cs360_pipeline.yaml_text import parse_yaml

PROVIDER_FILES = "*/provider.yml"


class RegistryError(ValueError):
    """A provider file is missing, unreadable or breaks the schema; names file and key."""


@dataclass(frozen=True)
class Problem:
    """One provider file that cannot be used, and why (a message per key, one per line)."""

    file: Path
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"

    @property
    def line(self) -> str:
        """The problem on one line, for a terminal or a log."""
        return f"{self.file}: " + "; ".join(
            part.strip().rstrip(":") for part in self.message.splitlines() if part.strip()
        )


@dataclass(frozen=True)
class Registry:
    """The providers that load now, the files that do not, and their last valid copies."""

    providers: dict[str, Provider]
    problems: list[Problem] = field(default_factory=list)
    last_valid: dict[str, Provider] = field(default_factory=dict)

    @property
    def known(self) -> dict[str, Provider]:
        """Every provider the deployment knows: valid now, else as it last was valid."""
        merged = {**self.last_valid, **self.providers}
        return {name: merged[name] for name in sorted(merged)}

    @property
    def failed(self) -> list[str]:
        """Providers (by folder) whose file fails now: not ingested, not aggregated."""
        return sorted(p.file.parent.name for p in self.problems)


class _Broken(Exception):
    """A provider file cannot be used; the message says why (without the path)."""


def _format(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        location = [str(part) for part in item["loc"]]
        message = item["msg"]
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, ExpressionRefused):
            location += list(cause.where)
            message = cause.message
        lines.append(f"  {'.'.join(location) or '(top level)'}: {message}")
    return "\n".join(lines)


def _read(path: Path) -> tuple[Provider, str]:
    """The provider of one file and the file's text."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = parse_yaml(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _Broken(f"cannot read provider file: {exc}") from exc
    if not isinstance(raw, dict):
        raise _Broken("expected a mapping at the top level")
    try:
        provider = Provider.model_validate(raw)
    except ValidationError as exc:
        raise _Broken(f"invalid provider file:\n{_format(exc)}") from exc
    if provider.provider != path.parent.name:
        raise _Broken(f"provider: {provider.provider!r} must match its folder {path.parent.name!r}")
    return provider, text


def load_provider(path: Path) -> Provider:
    """One provider file, validated; raises :class:`RegistryError` naming file and key."""
    try:
        return _read(path)[0]
    except _Broken as exc:
        raise RegistryError(f"{path}: {exc}") from exc


def _crosswalk_problem(provider: Provider, known: dict[str, Provider]) -> str | None:
    for name, dataset in provider.datasets.items():
        walk = dataset.geography.crosswalk if dataset.geography else None
        if walk is None:
            continue
        ref_provider, _, ref_dataset = walk.dataset.partition(".")
        ref = known.get(ref_provider)
        if ref is None or ref_dataset not in ref.datasets:
            return f"datasets.{name}.geography.crosswalk.dataset: unknown dataset {walk.dataset!r}"
        columns = ref.datasets[ref_dataset].columns
        if walk.key not in columns or "beat" not in columns:
            return (
                f"datasets.{name}.geography.crosswalk: {walk.dataset} needs columns "
                f"{walk.key!r} and 'beat'"
            )
    return None


def load_registry(sources_dir: Path, keep_dir: Path | None = None) -> Registry:
    """Every provider that loads, and a problem for each file that does not.

    With ``keep_dir``, each valid file is kept there as its provider's last valid copy, and a
    provider whose file fails now is also given from that copy (in ``last_valid``), so that what
    only describes it (catalog, scorecard) still resolves while nothing of it is refreshed.
    """
    files = sorted(sources_dir.glob(PROVIDER_FILES))
    if not files:
        raise RegistryError(f"{sources_dir}: no {PROVIDER_FILES} found")
    loaded: dict[str, tuple[Path, Provider, str]] = {}
    problems: list[Problem] = []
    for path in files:
        try:
            provider, text = _read(path)
        except _Broken as exc:
            problems.append(Problem(path, str(exc)))
            continue
        loaded[provider.provider] = (path, provider, text)
    kept = _last_valid(keep_dir, [p.file.parent.name for p in problems])
    known = {**kept, **{name: entry[1] for name, entry in loaded.items()}}
    for name, (path, provider, _) in list(loaded.items()):
        problem = _crosswalk_problem(provider, known)
        if problem is not None:
            problems.append(Problem(path, problem))
            del loaded[name]
    kept = _last_valid(keep_dir, [p.file.parent.name for p in problems])
    if keep_dir is not None:
        for name, (_, _, text) in loaded.items():
            last_valid.remember(keep_dir, name, text)
    providers = {name: entry[1] for name, entry in loaded.items()}
    return Registry(providers, problems, kept)


def _last_valid(keep_dir: Path | None, names: list[str]) -> dict[str, Provider]:
    """The kept copies that still validate, for the providers named."""
    if keep_dir is None:
        return {}
    found = {}
    for name in names:
        path = last_valid.copy_path(keep_dir, name)
        if not path.exists():
            continue
        try:
            found[name] = _read(path)[0]
        except _Broken:
            continue
    return found


def load_providers(sources_dir: Path) -> dict[str, Provider]:
    """All providers, keyed by name, with cross-provider references checked; any problem raises."""
    registry = load_registry(sources_dir)
    if registry.problems:
        raise RegistryError(str(registry.problems[0]))
    return registry.providers
