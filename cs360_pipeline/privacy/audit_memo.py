"""Audits that passed are not run again on the same tables, or on fewer of them.

The release audit attacks each measure and audience as one system: the audience's table of this
release with the releases still public (and, for the PST, the public's tables too), newest
first. Its verdict is a function of those publications (their cells, true counts, patterns, k,
insider flag, published rates, order) and of the attacker's code. Two facts let a refresh skip
most of it when one partner sends one new month:

- A release that publishes a table exactly as the release before it adds nothing an attacker
  can use (its cells link to the same unknowns, its equations repeat), so a publication equal
  to the one just older in the same chain is left out of the family's description.
- Leaving the oldest publications out of a chain (the window of releases still public moves
  on) only takes equations and published values away: every bound gets wider, so a family that
  passed passes again with its chains cut short at the old end.

So a family passes without being attacked when, for each of its audiences, its chain of
publication digests is the start of a chain that passed before under the same attacker code.
Otherwise it is attacked, and if it passes it is remembered. A failing family is never
remembered: it is attacked each time and its report names every failing cell.

What passed is kept in the vault, beside the true counts it was computed from, and forgotten
after ``KEEP_DAYS`` without use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from importlib.metadata import version
from pathlib import Path

import duckdb
import numpy as np

from cs360_pipeline.privacy import vault
from cs360_pipeline.privacy.audit import Publication
from cs360_pipeline.settings import Paths

TABLE = "audits_passed"
Memory = dict[str, list["Chains"]]  # head -> the chains of families that passed
KEEP_DAYS = 180


def _attacker_code() -> str:
    """The package version and the privacy package's source: a change to either is a new
    attacker, whose verdicts are not yet known."""
    digest = hashlib.sha256(version("cs360-pipeline").encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


ATTACKER_CODE = _attacker_code()


Chains = tuple[tuple[str, tuple[str, ...]], ...]  # (audience, publication digests, newest first)


def publication_digest(pub: Publication) -> str:
    """What an attacker reads in one publication (not its name or place in the order)."""
    lat = pub.lattice
    digest = hashlib.sha256(f"{pub.k}\0{pub.insider}\0{pub.rates!r}\0{lat.eq_dim!r}".encode())
    digest.update("\x1e".join("\x1f".join(key) for key in lat.keys).encode())
    for array in (lat.n, lat.rank, lat.eq_parent, lat.eq_ptr, lat.eq_child):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(pub.suppressed, dtype=bool).tobytes())
    return digest.hexdigest()


def family_chains(chains: Sequence[tuple[str, Sequence[Publication]]]) -> Chains:
    """Each audience's publications (newest first) as digests, a repeat of the one just newer
    left out."""
    out = []
    for audience, publications in chains:
        digests: list[str] = []
        for pub in publications:
            d = publication_digest(pub)
            if not digests or digests[-1] != d:
                digests.append(d)
        out.append((audience, tuple(digests)))
    return tuple(out)


def head(chains: Chains) -> str:
    """The lookup key: the attacker code and each audience's newest publication."""
    text = ATTACKER_CODE + "".join(f"\0{a}:{c[0] if c else ''}" for a, c in chains)
    return hashlib.sha256(text.encode()).hexdigest()


def covered(chains: Chains, remembered: Iterable[Chains]) -> bool:
    """Whether some family that passed had these chains, or longer ones that start with them."""
    return any(
        len(old) == len(chains)
        and all(
            a == b and len(new) <= len(prev) and prev[: len(new)] == new
            for (a, new), (b, prev) in zip(chains, old, strict=True)
        )
        for old in remembered
    )


def passed_before(con: duckdb.DuckDBPyConnection, catalog: str = "vault") -> Memory:
    """The families that passed an audit (the vault attached as ``catalog``), by ``head``."""
    known = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? "
        "AND table_name = ?",
        [catalog, TABLE],
    ).fetchall()[0][0]
    memory: Memory = {}
    if known:
        for key, chains in con.execute(f"SELECT head, chains FROM {catalog}.{TABLE}").fetchall():
            memory.setdefault(key, []).append(_decode(chains))
    return memory


def remember(paths: Paths, families: Iterable[Chains]) -> None:
    """Record families that passed (now), and forget those unused for ``KEEP_DAYS``."""
    rows = sorted({(head(c), json.dumps(c)) for c in families})
    with vault.opened(paths) as con:
        con.execute(
            f"CREATE TABLE IF NOT EXISTS vault.{TABLE} (head VARCHAR NOT NULL, "
            "chains VARCHAR NOT NULL, passed_at TIMESTAMP NOT NULL, PRIMARY KEY (head, chains))"
        )
        con.execute("BEGIN TRANSACTION")
        if rows:
            con.execute(
                f"INSERT OR REPLACE INTO vault.{TABLE} SELECT unnest(CAST(? AS VARCHAR[])), "
                "unnest(CAST(? AS VARCHAR[])), now()::TIMESTAMP",
                [[h for h, _ in rows], [c for _, c in rows]],
            )
        con.execute(
            f"DELETE FROM vault.{TABLE} "
            f"WHERE passed_at < now()::TIMESTAMP - INTERVAL {int(KEEP_DAYS)} DAY"
        )
        con.execute("COMMIT")


def _decode(text: str) -> Chains:
    return tuple((audience, tuple(chain)) for audience, chain in json.loads(text))
