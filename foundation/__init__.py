"""What every layer of ocirt needs, written once: errors, JSON, ``/proc`` readers, sizes,
time formats, mount tables.

The bottom of the import contract (docs/architecture.md): nothing here imports any other
part of ocirt, so specs, the runtime, the shim, the manager and the conformance suite can
all use it. The runtime's hot path imports these modules too, so each keeps to its import
diet (no ``json``, ``re``, ``typing`` at run time).
"""
