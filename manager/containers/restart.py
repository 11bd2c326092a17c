"""Restart policies, decided when a container exits (the seed's ``--restart``).

Never after an explicit ``stop`` or ``kill``: the user's intent wins over the policy.
``unless-stopped`` differs from ``always`` only across daemon restarts, which a daemonless
manager does not have, so here they behave alike.
"""

from __future__ import annotations


def should_restart(policy: str, max_count: int, restarts: int, exit_code: int | None, by_user: bool) -> bool:
    if by_user or policy == "no":
        return False
    if policy in ("always", "unless-stopped"):
        return True
    failed = exit_code is None or exit_code != 0
    return failed and (max_count == 0 or restarts < max_count)
