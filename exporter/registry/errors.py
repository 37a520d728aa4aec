"""Registry failures as one exception family; messages say which registry, what happened, what to do."""

from __future__ import annotations


class RegistryError(Exception):
    """A registry request that did not produce a usable answer (network, HTTP status, auth, bad content)."""

    def __init__(self, message: str, *, registry: str, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.registry = registry
        self.url = url
        self.status = status


class NotFoundError(RegistryError):
    """The registry answered 404: the manifest or blob does not exist (for a ``.sig`` tag: unsigned)."""
