"""`python -m cnilab.cluster ...`: the cluster commands on their own (as `cnilab cluster ...`)."""

from cnilab.cluster.cli import cluster_app

cluster_app(prog_name="cnilab cluster")
