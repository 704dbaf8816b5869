"""Whetstone core: Qt-free logic behind every page and CLI subcommand.

Importing this package makes the process offline before any Hugging Face library can be imported.
"""

from core.offline import enforce_offline as _enforce_offline

__version__ = "0.1.0"

_enforce_offline()
