"""The web app: JSON API, pages and the live stream, on FastAPI. Routes stay thin."""
