"""Busybox bundles (``bundle.py``) for the tests, the bench, the conformance suite and
``make demo`` (``demo.py``): no runtime code, so the runtime-agnostic suite can use them."""
