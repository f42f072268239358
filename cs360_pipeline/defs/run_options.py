"""What a run is asked to do beyond its selection: a resource configured per run.

``cs360 refresh --full`` sets it; in the Dagster UI, the Launchpad's ``resources.run_options``
section does. Sensors and the nightly schedule run with the defaults.
"""

import dagster as dg

RESOURCE_KEY = "run_options"


class RunOptions(dg.ConfigurableResource):
    """Options of one run."""

    full: bool = False  # redo every step, even where its inputs are unchanged

    @staticmethod
    def config(*, full: bool) -> dict[str, object]:
        """The run configuration that sets these options."""
        return {"resources": {RESOURCE_KEY: {"config": {"full": full}}}}
