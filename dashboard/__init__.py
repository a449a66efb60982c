"""The analyst dashboard: server-rendered pages under /dashboard, signed in with an API key."""
