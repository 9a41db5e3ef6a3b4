"""`python -m cnilab.cluster ...`: the cluster commands on their own (as `cnilab cluster ...`)."""

from cnilab.cluster.cli import cluster_app
from cnilab.compat import evaluate_command_signatures

evaluate_command_signatures(cluster_app)

cluster_app(prog_name="cnilab cluster")
