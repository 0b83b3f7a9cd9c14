"""The Matrix protocol: transport, endpoints, identifiers, discovery, OAuth, event helpers."""
