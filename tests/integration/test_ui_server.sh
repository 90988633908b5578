#!/usr/bin/env bash
# The web UI's server side end to end: embedded files, headers, sign-in, CSRF (ui_server_test.py).
exec bash "$(dirname "$0")/test_server.sh" ui_server_test.py
