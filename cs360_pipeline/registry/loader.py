"""Load and validate every ``provider.yml`` under the sources folder."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from cs360_pipeline.registry.models import Provider


class RegistryError(ValueError):
    """A provider file is missing, unreadable or breaks the schema; names file and key."""


def _format(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def load_provider(path: Path) -> Provider:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"{path}: cannot read provider file: {exc}") from exc
    if not isinstance(raw, dict):
        raise RegistryError(f"{path}: expected a mapping at the top level")
    try:
        provider = Provider.model_validate(raw)
    except ValidationError as exc:
        raise RegistryError(f"{path}: invalid provider file:\n{_format(exc)}") from exc
    if provider.provider != path.parent.name:
        raise RegistryError(
            f"{path}: provider: {provider.provider!r} must match its folder {path.parent.name!r}"
        )
    return provider


def load_providers(sources_dir: Path) -> dict[str, Provider]:
    """All providers, keyed by name, with cross-provider references checked."""
    files = sorted(sources_dir.glob("*/provider.yml"))
    if not files:
        raise RegistryError(f"{sources_dir}: no */provider.yml found")
    providers = {p.provider: p for p in map(load_provider, files)}
    for provider in providers.values():
        for name, dataset in provider.datasets.items():
            walk = dataset.geography.crosswalk if dataset.geography else None
            if walk is None:
                continue
            ref_provider, _, ref_dataset = walk.dataset.partition(".")
            ref = providers.get(ref_provider)
            if ref is None or ref_dataset not in ref.datasets:
                raise RegistryError(
                    f"{sources_dir / provider.provider / 'provider.yml'}: datasets.{name}."
                    f"geography.crosswalk.dataset: unknown dataset {walk.dataset!r}"
                )
            columns = ref.datasets[ref_dataset].columns
            if walk.key not in columns or "beat" not in columns:
                raise RegistryError(
                    f"{sources_dir / provider.provider / 'provider.yml'}: datasets.{name}."
                    f"geography.crosswalk: {walk.dataset} needs columns {walk.key!r} and 'beat'"
                )
    return providers
