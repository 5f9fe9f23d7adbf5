"""The package version, in one place (the top-level API and the OpenAPI document both give it)."""

__version__ = "0.1.0"
