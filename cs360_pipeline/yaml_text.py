"""Configuration YAML (provider files, the policy, the metric catalog) as plain Python values.

PyYAML's libyaml parser reads the same documents as its pure-Python one, with the same safe
types, about eight times faster; a refresh reads the catalog and the provider files several
times. The pure-Python parser is the fallback where PyYAML was built without libyaml.
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str | bytes) -> Any:
    """The document in ``text``; raises ``yaml.YAMLError`` (with line and column) when it is
    not YAML."""
    return yaml.load(text, Loader=_LOADER)
