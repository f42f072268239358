"""Reports on a published release: the PST brief."""
