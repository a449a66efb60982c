"""The roof: the FastAPI application and the `cbrain` CLI. Nothing imports `app`."""
