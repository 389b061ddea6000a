"""API tests: the real server (uvicorn subprocess) through the real gql client."""
