"""The compiled syscall layer cannot be declared in pyproject.toml alone: cffi hooks setuptools here."""

from setuptools import setup

setup(cffi_modules=["runtime/syscalls_build.py:ffibuilder"])
