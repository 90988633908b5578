#!/usr/bin/env bash
# GET /v1/tasks/{id}/events (Server-Sent Events) end to end: a real server, the real Docker daemon (sse_test.py).
exec bash "$(dirname "$0")/test_server.sh" sse_test.py
