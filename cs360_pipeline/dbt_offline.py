"""``cs360-dbt``: the dbt command line, offline.

dagster-dbt runs ``dbt --version`` before every build, and dbt answers that by asking PyPI for
the latest release. The pipeline runs without network, so this entry point answers ``--version``
from the installed package and hands every other command to dbt unchanged.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from dbt.version import __version__

        print(f"Core:\n  - installed: {__version__}\n")
        return
    from dbt.cli.main import cli

    sys.exit(cli())


if __name__ == "__main__":
    main()
