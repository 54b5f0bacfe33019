"""The embedded store: objects, index and the ``.wbtool/`` folder."""

from wbtool.store.layout import Store, discover

__all__ = ["Store", "discover"]
