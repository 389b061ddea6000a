"""The agent runner (SPEC §10): `chatroom agents run` serves a room's roles from one terminal.

A client like the CLI: it talks to the server only through chatroom.cli.client and the CLI's
operation documents, and imports nothing of chatroom.schema, chatroom.resolvers or chatroom.db.
"""
