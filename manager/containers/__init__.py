"""Containers of ``ocirtctl``: records, flags, runtime configs, lifecycle and the exit path."""
