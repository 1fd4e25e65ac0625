"""``python -m jupyter_faas.server``: run the function server."""

from .app import main

main()
