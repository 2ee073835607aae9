"""The operator server: FastAPI + uvicorn on 127.0.0.1, token auth, jobs with progress and cancel."""
