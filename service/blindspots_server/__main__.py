"""`python -m blindspots_server` runs the server, like `blindspots serve`."""
import sys

from blindspots.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
