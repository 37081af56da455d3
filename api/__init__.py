"""Settings, wiring, the command line and (later) the HTTP API."""
