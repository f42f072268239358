"""A release: one set of published tables, named by what it was made from.

- ``identity``: the release id, hashed from the loaded files (with their contracts), the
  privacy policy and the code version, so the same inputs always name the same release.
- ``publication``: the protocol that makes a release live (a new warehouse file swapped in,
  the privacy vault and the release log kept in step) and finishes one a crash cut short.
- ``log``: the release log readers query (``data/releases.duckdb``).
- ``unchanged``: whether a refresh would publish the live release again, so it can say so and
  run nothing.

The true counts and suppression pattern of each release still public are kept in the privacy
vault (``privacy/vault.py``, the restricted zone); the joint audit of this release with them is
``privacy/release_audit.py``. Publication records a release in the vault before it goes live.
"""
