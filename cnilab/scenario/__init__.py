"""Troubleshooting scenarios: the lab (or the cluster) with one fault, graded from the kernel.

The faults themselves are engine ops (ops/faults.py): the lab's and the cluster's ledgers read
them back without importing this package.
"""
