"""FastAPI app: REST, WebSocket and the dashboard page."""
