"""``ocirtctl`` command groups, one module per group, each exposing ``register``."""
