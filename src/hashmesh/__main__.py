"""``python -m hashmesh`` runs the CLI."""

from hashmesh.cli import main

main()
