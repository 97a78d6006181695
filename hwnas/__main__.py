"""``python -m hwnas``: the ``hwnas`` command (lists the commands; ``python -m hwnas search ...`` runs one)."""
from hwnas.cli import main

raise SystemExit(main())
