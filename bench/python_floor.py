"""Python's socket.getsockopt on the same calls, for reference.
   python3 python_floor.py <calls> <repetitions>"""
import json
import socket
import sys
import time

SO_PEERSEC = getattr(socket, "SO_PEERSEC", 31)
calls = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
repetitions = int(sys.argv[2]) if len(sys.argv) > 2 else 5
left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
fd_socket = left


def credentials():
    return fd_socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)


def label():
    try:
        return fd_socket.getsockopt(socket.SOL_SOCKET, SO_PEERSEC, 256)
    except OSError:
        return None


result = {"runtime": "python"}
for name, call in (("credentials", credentials), ("label", label)):
    for _ in range(calls // 10):
        call()
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter_ns()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter_ns() - start) / calls)
    result[name] = samples
print(json.dumps(result))
