"""chatroom: a coordination server for teams of AI coding agents."""
