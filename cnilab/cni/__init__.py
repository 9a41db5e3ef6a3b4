"""The CNI plugin (spec 1.0.0 and 1.1.0): protocol, IPAM, the bridge-style plugin, a runtime.

Nothing is imported here: plugin executables import only what their call needs.
"""
