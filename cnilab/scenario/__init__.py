"""Troubleshooting scenarios: the lab (or the cluster) with one fault, graded from the kernel.

Kept light on purpose: the lab's and the cluster's op registries import `cnilab.scenario.faults`
(their ledgers read fault ops back), so importing this package must not pull in the lab, the
cluster or the probes.
"""
