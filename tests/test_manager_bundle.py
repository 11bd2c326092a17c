"""The manager's ``config.json`` passes through the runtime's typed model before it is
written: what the image brings (its config is untrusted input from a registry) and the
flags add must make a document the runtime accepts, or the manager names the field."""

from __future__ import annotations

from typing import Any

import pytest
from ocirt.manager.containers import spec
from ocirt.manager.containers.options import CreateOptions
from ocirt.manager.containers.start import check_config
from ocirt.manager.errors import ManagerError
from ocirt.manager.images import bundle


def _config(image: dict[str, Any], rootfs: str) -> dict[str, Any]:
    base = bundle.runtime_config(bundle.process_defaults({"config": image}), rootfs)
    return spec.build(base, CreateOptions(image="example"), spec.Plumbing())


def test_a_plain_image_makes_a_valid_config(tmp_path: str) -> None:
    check_config(_config({"Cmd": ["sh"], "Env": ["A=b"], "WorkingDir": "/srv"}, str(tmp_path)))


@pytest.mark.parametrize(
    ("image", "field"),
    [
        # runtime-spec: cwd is absolute; runc: an env entry without '=' is refused
        ({"Cmd": ["sh"], "WorkingDir": "srv"}, "process.cwd: must be an absolute path"),
        ({"Cmd": ["sh"], "Env": ["PATH=/bin", "JUNK"]}, "process.env[1]: 'JUNK' is not a KEY=value"),
        ({"Cmd": ["sh"], "Env": ["A=\0"]}, "process.env[1]: must not contain a NUL"),
    ],
)
def test_a_bad_image_config_is_named_before_anything_runs(
    tmp_path: str, image: dict[str, Any], field: str
) -> None:
    with pytest.raises(ManagerError) as err:
        check_config(_config(image, str(tmp_path)))
    assert str(err.value).startswith(f"the container's config.json: {field}"), str(err.value)
