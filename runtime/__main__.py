from ocirt.runtime.cli import entry

entry()
