"""A client for the OCI distribution API (and Docker's registry v2, its ancestor)."""
