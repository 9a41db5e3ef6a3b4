"""Allow `python -m cnilab`."""

from cnilab.cli import main

main()
