"""The agent runner (SPEC §10): the machine daemon (`chatroom machine start`, and `chatroom agents
run` for one room) runs the agent slots the server says should run on this computer.

A client like the CLI: it talks to the server only through chatroom.cli.client and the CLI's
operation documents, and imports nothing of chatroom.schema, chatroom.resolvers or chatroom.db.
"""
