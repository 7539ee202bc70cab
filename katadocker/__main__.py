"""`python -m katadocker` runs the command line."""

from katadocker.cli.entry import main

main()
