"""What the host knows before any plugin code runs: manifests, versions, resolution, the registry.

Nothing in this part imports plugin code or the runtime.
"""
