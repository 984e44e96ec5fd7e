"""The local content-addressed store: blocks on disk, a SQLite index, an async API.

``hashmesh.Store`` is :class:`hashmesh.store.api.Store`; import it from there
(this package stays light so the value types in ``model`` load fast).
"""
