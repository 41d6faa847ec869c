"""`python -m nevermind.cli`."""

from nevermind.cli.app import main

main()
