"""Publishing: the build database's marts become the release analysts read."""
