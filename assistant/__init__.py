"""The assistant: Claude (or the offline planner) over our own MCP tools, for Slack, Gorgias
and the command line."""
