"""`python -m cutout_cli` is the `cutout` command."""

from cutout_cli.main import main

main()
