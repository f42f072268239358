"""The CS360 metric catalog: reviewed definitions beside the dbt models that compute them."""
