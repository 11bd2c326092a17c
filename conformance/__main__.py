from ocirt.conformance.cli import entry

entry()
