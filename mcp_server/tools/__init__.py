"""The tool families; each module's `register(mcp, deps)` adds its tools."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from mcp_server.deps import Deps


def register_all(mcp: MCPServer, deps: Deps) -> None:
    from mcp_server.tools import analytics, behavior, customers, forecast, predictions

    for module in (customers, predictions, analytics, behavior, forecast):
        module.register(mcp, deps)
