"""`python -m bot` runs the creditbot command line."""

from bot.cli import main

main()
