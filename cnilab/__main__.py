"""Allow `python -m cnilab`."""

from cnilab.cli.main import main

main()
