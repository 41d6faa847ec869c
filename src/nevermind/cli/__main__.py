"""`python -m nevermind.cli`."""

from nevermind.cli.app import main

if __name__ == "__main__":  # a spawned child process (vLLM's engine) imports this module again
    main()
