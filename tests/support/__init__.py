"""Helpers shared by tests: a real local registry and test images built from local files."""
