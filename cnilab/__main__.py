"""Allow `python -m cnilab`."""

from cnilab.cli.entry import main

main()
