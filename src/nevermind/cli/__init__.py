"""The `nevermind` command line."""
