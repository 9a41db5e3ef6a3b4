"""The cluster networking lesson: nodes as namespaces on one LAN, pod CIDRs, routes, components.

plan.py describes the cluster as data (no kernel), cluster.py builds and removes it, quiz.py asks
the lab's questions and grades them from the kernel; its commands are cli/cluster.py and
cli/quiz.py, its live screen render/cluster.py.
"""
