"""HTTP and WebSocket API: the app factory, one router per domain, the live hub."""
