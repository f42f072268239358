"""Drop folders to the restricted database: read, validate, load or quarantine, never lose."""

from cs360_pipeline.ingest.loader import FileOutcome, ingest_dataset

__all__ = ["FileOutcome", "ingest_dataset"]
