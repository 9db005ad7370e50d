#!/usr/bin/env python3
"""Holds N TLS connections to the hub from one source address, each trickling one header
byte every second (never finishing its request). Prints, once SECONDS have passed, how many
connections the hub accepted and how many of those it closed. Usage:
slow_clients.py HOST PORT SOURCE N SECONDS"""
import socket, ssl, sys, time

host, port, source, n, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
conns, refused = [], 0
for _ in range(n):
    try:
        raw = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
        s = ctx.wrap_socket(raw, server_hostname=host)
        s.sendall(b"GET /v1/pull?cursor=0 HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        conns.append(s)
    except (OSError, ssl.SSLError):
        refused += 1
accepted = len(conns)
print("open", accepted, "refused", refused, flush=True)
closed = set()
end = time.time() + secs
while time.time() < end:
    for i, s in enumerate(conns):
        if i in closed:
            continue
        try:
            s.send(b"X")
            try:
                if s.recv(1) == b"":
                    closed.add(i)
            except (ssl.SSLWantReadError, BlockingIOError):
                pass
        except (OSError, ssl.SSLError):
            closed.add(i)
    time.sleep(1)
print("accepted", accepted, "closed", len(closed), flush=True)
