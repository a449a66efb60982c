"""Ingestion: webhooks, imports and the stream worker that turn outside data into canonical events."""
