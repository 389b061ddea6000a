"""`chatroom mcp`: a stdio MCP server, a client of the chatroom server like the CLI (SPEC §11)."""
