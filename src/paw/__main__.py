"""``python -m paw`` (and ``accelerate launch -m paw``) runs the CLI."""

from paw.cli.main import run

if __name__ == "__main__":
    run()
