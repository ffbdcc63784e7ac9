"""The core lake: the only code that writes the lake bucket and the catalog table."""
