"""One module per area of the spec; importing this package registers every case, in the
order below (the order of the reports)."""
# isort: skip_file

from ocirt.conformance.cases import lifecycle  # noqa: F401
from ocirt.conformance.cases import state  # noqa: F401
from ocirt.conformance.cases import process  # noqa: F401
from ocirt.conformance.cases import namespaces  # noqa: F401
from ocirt.conformance.cases import filesystem  # noqa: F401
from ocirt.conformance.cases import devices  # noqa: F401
from ocirt.conformance.cases import system  # noqa: F401
from ocirt.conformance.cases import cgroups  # noqa: F401
from ocirt.conformance.cases import hooks  # noqa: F401
from ocirt.conformance.cases import seccomp  # noqa: F401
from ocirt.conformance.cases import terminal  # noqa: F401
from ocirt.conformance.cases import features  # noqa: F401
