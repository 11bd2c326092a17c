"""The shim's own failures, as the manager or a client is told of them."""

from __future__ import annotations


class Failed(Exception):
    """Setup failed; the text goes to the manager over the sync pipe."""


class RequestError(Exception):
    """A client asked for something the container's state does not allow."""
