"""A deployment's copy of the dbt project follows the installation and keeps what is its own."""

from __future__ import annotations

from pathlib import Path

from cs360_pipeline.catalog.dbt_workdir import mirror, prepare, project_files
from cs360_pipeline.catalog.freshness_sources import RELATIVE_PATH
from cs360_pipeline.registry import load_providers
from cs360_pipeline.settings import DBT_PROJECT_DIR, Paths
from tests.conftest import copy_provider_configs

MODEL = Path("models/marts/metric_values.sql")


def test_the_copy_follows_the_installation_and_keeps_its_own_file(tmp_path: Path) -> None:
    workdir = tmp_path / "copy"
    first = mirror(workdir, keep=frozenset({RELATIVE_PATH}))
    assert set(first) == set(project_files(DBT_PROJECT_DIR)) - {RELATIVE_PATH}
    assert (workdir / MODEL).read_bytes() == (DBT_PROJECT_DIR / MODEL).read_bytes()

    # An unchanged file is left alone (its mtime keeps dbt's manifest valid); an edited one, a
    # file the installation no longer ships and a scratch file left by a killed copy are put
    # right; the deployment's own file stays.
    (workdir / MODEL).write_text("select 1", encoding="utf-8")
    (workdir / "models/marts/retired_model.sql").write_text("select 2", encoding="utf-8")
    (workdir / "models/.orphan.sql.99.partial").write_text("sel", encoding="utf-8")
    (workdir / RELATIVE_PATH).write_text("version: 2\n", encoding="utf-8")
    untouched = workdir / "macros" / sorted(p.name for p in (workdir / "macros").iterdir())[0]
    mtime = untouched.stat().st_mtime_ns

    again = mirror(workdir, keep=frozenset({RELATIVE_PATH}))
    assert sorted(map(str, again)) == [
        "models/.orphan.sql.99.partial",
        "models/marts/metric_values.sql",
        "models/marts/retired_model.sql",
    ]
    assert (workdir / MODEL).read_bytes() == (DBT_PROJECT_DIR / MODEL).read_bytes()
    assert not (workdir / "models/marts/retired_model.sql").exists()
    assert (workdir / RELATIVE_PATH).read_text(encoding="utf-8") == "version: 2\n"
    assert untouched.stat().st_mtime_ns == mtime
    assert mirror(workdir, keep=frozenset({RELATIVE_PATH})) == []


def test_two_deployments_get_their_own_freshness_sources(tmp_path: Path) -> None:
    """Each deployment's copy names its own datasets; the installation's project is not written."""
    before = {r: p.read_bytes() for r, p in project_files(DBT_PROJECT_DIR).items()}
    full, police_only = (
        Paths(data_dir=tmp_path / name / "data", sources_dir=copy_provider_configs(tmp_path / name))
        for name in ("full", "police_only")
    )
    for provider in load_providers(police_only.sources_dir):
        if provider not in ("police", "city"):
            (police_only.sources_dir / provider / "provider.yml").unlink()

    texts = [(prepare(p) / RELATIVE_PATH).read_text(encoding="utf-8") for p in (full, police_only)]
    assert "hospital__ed_visits" in texts[0] and "police__incidents" in texts[0]
    assert "hospital__" not in texts[1] and "police__incidents" in texts[1]
    assert {r: p.read_bytes() for r, p in project_files(DBT_PROJECT_DIR).items()} == before
