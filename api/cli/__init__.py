"""The command-line face: the click commands (commands.py, search.py, ask.py, evaluate.py),
their console output (console.py), the client that sends a command to a running server instead
of opening the stores (client.py), the watched folder without HTTP (watch.py),
`archivist chat`, the terminal chat (chat_app.py draws it, chat_data.py reads and asks for it),
and `archivist mcp`, the documents as tools for other assistants (mcp_server.py).

It imports the service and the evaluation clients, never the HTTP face: `archivist serve` is
added by the program (api/main.py).
"""

from api.cli.commands import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, cli, run

__all__ = ["EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE", "cli", "run"]
