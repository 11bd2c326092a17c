"""The Docker Engine API served over the manager (``ocirtctl system service``)."""
