"""`python -m peekcli` runs the CLI."""

from peekcli.cli import main

if __name__ == "__main__":
    main()
