"""The contracts between zones: what a table must be when one zone hands it to the next.

Each contract is a pandera schema checked in place on the DuckDB file (through ibis, which
compiles every rule to SQL): the shared cells the privacy step hands to dbt (``cells``), and the
tables the release publishes (``published``). A broken contract is a blocking Dagster check.
"""
