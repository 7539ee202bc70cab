"""`python -m katadocker` runs the command line."""

from katadocker.cli.main import main

main()
