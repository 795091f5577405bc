"""Dictation pipeline for medical and legal secretariats.

The library lives here; ``cli.py`` at the project root is a thin Typer layer over it.
"""

from __future__ import annotations

__version__ = "0.1.0"
