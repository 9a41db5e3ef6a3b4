"""Troubleshooting scenarios: the lab (or the cluster) with one fault, graded from the kernel.

Kept light on purpose: the ledger imports `cnilab.scenario.faults` to know the fault ops, so
importing this package must not pull in the lab, the cluster or the probes.
"""
