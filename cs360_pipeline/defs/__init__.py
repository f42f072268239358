"""Dagster definitions, one module per area; ``cs360_pipeline.definitions`` merges them."""
