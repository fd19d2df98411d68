"""A WSGI app standing for mailman3-web: its node's name, the path and the client it saw, as text."""

import socket


def application(environ, start_response):
    body = (
        f"node={socket.gethostname()} path={environ.get('PATH_INFO')} remote={environ.get('REMOTE_ADDR')}\n"
    )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
