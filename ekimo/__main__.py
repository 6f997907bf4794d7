"""`python -m ekimo`: the same command line as `ekimo`."""

from ekimo.entry.cli import main

main()
