"""The zoo's version, in a leaf module so any layer can record it."""

__version__ = "0.1.0"
