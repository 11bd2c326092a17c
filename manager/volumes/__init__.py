"""Named and anonymous volumes: directories under the manager's root, mounted into containers."""
