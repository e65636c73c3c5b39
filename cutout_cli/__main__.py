"""`python -m cutout` is the `cutout` command."""

from cutout_cli.main import main

main()
