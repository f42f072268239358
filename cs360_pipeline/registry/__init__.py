"""The provider registry: who delivers which dataset, in what shape, and what it measures."""

from cs360_pipeline.registry.loader import (
    Problem,
    Registry,
    RegistryError,
    load_providers,
    load_registry,
)
from cs360_pipeline.registry.models import (
    Column,
    Dataset,
    Geography,
    Measure,
    Provider,
)

__all__ = [
    "Column",
    "Dataset",
    "Geography",
    "Measure",
    "Problem",
    "Provider",
    "Registry",
    "RegistryError",
    "load_providers",
    "load_registry",
]
