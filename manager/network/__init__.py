"""Container networking for ``ocirtctl``: bridge and macvlan networks, IPAM, NAT, ports, DNS.

``service`` is the face the rest of the manager uses; the other modules each own one kernel
or protocol concern (``netns``, ``bridge``, ``links``, ``macvlan``, ``nat``, ``dns``) or a
pure computation (``ipam``, ``ports``, ``resolv``) so the side effects stay at the edges.
"""
