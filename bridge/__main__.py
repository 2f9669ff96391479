"""`python3 -m bridge` (with the folder holding `bridge/` on sys.path) does what main.py does."""

from .app import main

main()
