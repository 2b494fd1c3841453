#!/usr/bin/env python3
"""The slow-drip attack of bench/slow_drip.sh, as a client: N raw PUTs that
each declare SIZE bytes, send FIRST of them and pause; then every client
sends the rest. Prints one line: the server's resident memory (VmRSS, MiB)
before, its peak (VmHWM) while the uploads stall, its peak by the end, and
how many uploads were stored (201)."""
import os
import socket
import sys
import threading
import time

port, token, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
count, size_mib, first_mib, pause = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
SIZE, FIRST, PIECE = size_mib << 20, first_mib << 20, 256 * 1024


def status_mib(field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(field)


before = status_mib("VmRSS")
conns = []
for i in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"PUT /upload/drip{i} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
              f"Content-Length: {SIZE}\r\n\r\n".encode())
    conns.append(s)
piece = os.urandom(PIECE)


def send(indexes, nbytes):
    for i in indexes:
        try:
            for _ in range(nbytes // PIECE):
                conns[i].sendall(piece)
        except OSError:
            pass  # refused or cut off: counted below as not stored


threads = [threading.Thread(target=send, args=(range(t, count, 10), FIRST)) for t in range(10)]
for t in threads:
    t.start()
time.sleep(pause)  # the uploads stall here (some sends wait on the server's backpressure)
stalled = status_mib("VmHWM")
for t in threads:
    t.join()
threads = [threading.Thread(target=send, args=(range(t, count, 10), SIZE - FIRST)) for t in range(10)]
for t in threads:
    t.start()
for t in threads:
    t.join()
stored = 0
for s in conns:
    s.settimeout(120)
    try:
        if s.recv(64).startswith(b"HTTP/1.1 201"):
            stored += 1
    except OSError:
        pass
print(f"{before:.1f} {stalled:.1f} {status_mib('VmHWM'):.1f} {stored}")
