"""``python -m exporter`` runs the trustwatch CLI."""

import sys

from exporter.cli import main

sys.exit(main())
