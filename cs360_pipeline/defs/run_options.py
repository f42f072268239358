"""What a run was asked to do beyond its selection, read from its tags."""

import dagster as dg

from cs360_pipeline.publish.outputs import FULL_TAG


def full_refresh(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> bool:
    """``cs360 refresh --full`` (or the run tag cs360/full=true in the UI): redo every step,
    even where its inputs are unchanged."""
    return context.run.tags.get(FULL_TAG, "").lower() == "true"
