"""Importing this module registers every built-in model family."""

from deploykit.models import imagenet  # noqa: F401
