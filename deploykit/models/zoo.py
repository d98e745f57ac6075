"""Importing this module registers every built-in model family."""

from deploykit.models import classic, d2l, imagenet  # noqa: F401
