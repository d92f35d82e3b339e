"""The ops console: a FastAPI app with a JSON API, live server-sent events and one web page."""
