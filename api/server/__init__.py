"""The HTTP face: the FastAPI app (app.py) with its routes (routes_*.py), request and response
models (models.py), error mapping (errors.py), body limits (limits.py), the refusal of other
pages' requests (origin.py), server-sent answers (streaming.py), what every route shares
(common.py), `run_server` (serve.py) and the web page (web/). It imports the service, never the
command line.
"""

from api.server.app import create_app
from api.server.serve import is_loopback, run_server

__all__ = ["create_app", "is_loopback", "run_server"]
