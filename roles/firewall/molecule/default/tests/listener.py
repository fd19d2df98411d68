"""Test listener for the firewall scenario: TCP ports answer a banner, UDP ports echo.

Usage: listener.py TCP_PORTS UDP_PORTS  (comma-separated). Every socket is dual-stack (::).
"""

import selectors
import socket
import sys

tcp_ports = [int(p) for p in sys.argv[1].split(",") if p]
udp_ports = [int(p) for p in sys.argv[2].split(",") if p]
sel = selectors.DefaultSelector()


def bound(kind: int, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::", port))
    return sock


for port in tcp_ports:
    s = bound(socket.SOCK_STREAM, port)
    s.listen(16)
    sel.register(s, selectors.EVENT_READ, ("tcp", port))
for port in udp_ports:
    sel.register(bound(socket.SOCK_DGRAM, port), selectors.EVENT_READ, ("udp", port))

while True:
    for key, _ in sel.select():
        proto, port = key.data
        if proto == "tcp":
            conn, _peer = key.fileobj.accept()
            conn.sendall(f"hello tcp {port}\n".encode())
            conn.close()
        else:
            data, peer = key.fileobj.recvfrom(512)
            key.fileobj.sendto(b"echo udp " + str(port).encode() + b" " + data, peer)
