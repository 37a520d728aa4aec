"""Sub-commands of the ``trustwatch`` CLI.

Each module exposes ``register(subparsers)`` and ``run(args) -> int``. Modules import only the standard
library at top level so that ``trustwatch verify`` starts fast; heavy imports happen inside ``run``.
"""
