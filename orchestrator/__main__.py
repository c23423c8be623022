"""``python -m orchestrator`` runs the ``sovereign`` CLI."""

from orchestrator.cli import main

main()
