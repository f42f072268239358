"""The provider registry: who delivers which dataset, in what shape, and what it measures."""

from cs360_pipeline.registry.loader import RegistryError, load_providers
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
    "Provider",
    "RegistryError",
    "load_providers",
]
