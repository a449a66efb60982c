"""Customer Brain's MCP server: read-only analytics tools over one brand's customers.

`server.build_server` assembles the tools, resources and prompts; `http.mount` serves them
at `/mcp` of the FastAPI app (bearer API key per brand); `cbrain mcp --brand SLUG` serves
them over stdio for Claude Desktop. See docs/mcp.md.
"""
