"""`python -m cutout` is the `cutout` command."""

from cutout.cli.main import main

main()
