"""The only code that reads the restricted database: row level in, protected cells out."""
