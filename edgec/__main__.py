"""``python -m edgec`` runs the CLI."""

from .cli import entry

entry()
