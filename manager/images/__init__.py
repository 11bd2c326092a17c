"""Images: content store, registry client, layer unpacking, snapshots and bundles.

``service`` is the face other parts of the manager use; the rest holds one concern each.
"""
