#!/usr/bin/python3
"""A stand-in for a liege worker executable, for the master's tests (stdlib only).

It reads the handoff (LIEGE_ROLE, LIEGE_WORKER_ID, LIEGE_SOCKETS, LIEGE_OPTIONS_FD,
LIEGE_SCOREBOARD_FD, LIEGE_ZYGOTE_FD), writes its scoreboard slot, and answers every request
with `HTTP/1.1 200 OK` and a body `PID PROTO SLOT`. `GET /sleep` sleeps for a minute (harakiri).
SIGHUP or SIGTERM: finish the current request, exit 0. SIGINT or SIGQUIT: exit at once.

Behaviour switches, from the environment the master passes on:
  FAKE_MODE=crash       exit 1 at once
  FAKE_MODE=need-app    exit 22 at once (the app could not be loaded)
  FAKE_MODE=exit0       exit 0 at once
  FAKE_MAX_REQUESTS=N   exit 0 after N requests (as max-requests does)
  FAKE_LOAD_DELAY=S     wait S seconds before accepting
  FAKE_IGNORE_HUP=1     ignore SIGHUP (for worker-reload-mercy)
  FAKE_ORPHANS=N        at start, leave N orphans behind (double forks, each in a session of
                        its own) that live 1.5 s
  FAKE_MARK_DIR=D       create D/ROLE-PID at start
"""

import ctypes
import mmap
import os
import selectors
import signal
import socket
import struct
import sys
import time

HEADER_WORDS, WORKER_WORDS, CORE_WORDS = 4, 16, 12
PID, STATE, REQUESTS = 0, 1, 2
LOADING, ACCEPTING = 1, 2
REQUEST_START, CLIENT_FD_PLUS_ONE, RESPONSE_STARTED, CORE_REQUESTS = 0, 1, 2, 3


class Board:
    def __init__(self, fd, slot):
        size = os.fstat(fd).st_size
        self.m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        cores = self.word(2)
        self.base = HEADER_WORDS + (slot - 1) * (WORKER_WORDS + cores * CORE_WORDS)

    def word(self, i):
        return struct.unpack_from("<Q", self.m, i * 8)[0]

    def set(self, i, v):
        struct.pack_into("<Q", self.m, i * 8, v)

    def field(self, f, v=None):
        if v is None:
            return self.word(self.base + f)
        self.set(self.base + f, v)

    def core(self, f, v=None):
        i = self.base + WORKER_WORDS + f
        if v is None:
            return self.word(i)
        self.set(i, v)

    def label(self, text):
        raw = text.encode()[:64].ljust(64, b"\0")
        start = (self.base + WORKER_WORDS + 4) * 8
        self.m[start:start + 64] = raw


def mark(role):
    d = os.environ.get("FAKE_MARK_DIR")
    if d:
        open(os.path.join(d, "%s-%d" % (role, os.getpid())), "w").close()


def orphans(n):
    for _ in range(n):
        os.system("(setsid sleep 1.5 &)")


def serve(slot):
    mark("worker")
    if os.environ.get("FAKE_MODE") == "crash":
        os._exit(1)
    if os.environ.get("FAKE_MODE") == "need-app":
        os._exit(22)
    if os.environ.get("FAKE_MODE") == "exit0":
        os._exit(0)
    max_requests = int(os.environ.get("FAKE_MAX_REQUESTS", "0"))
    board = Board(int(os.environ["LIEGE_SCOREBOARD_FD"]), slot)
    board.field(PID, os.getpid())
    board.field(STATE, LOADING)
    stop = []
    signal.signal(signal.SIGHUP, signal.SIG_IGN if os.environ.get("FAKE_IGNORE_HUP")
                  else lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    signal.signal(signal.SIGQUIT, lambda *_: os._exit(0))
    orphans(int(os.environ.get("FAKE_ORPHANS", "0")))
    time.sleep(float(os.environ.get("FAKE_LOAD_DELAY", "0")))
    sel = selectors.DefaultSelector()
    for entry in os.environ["LIEGE_SOCKETS"].split(";"):
        fd, proto, _name = entry.split(",", 2)
        s = socket.socket(fileno=int(fd))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, proto)
    board.field(STATE, ACCEPTING)
    while not stop:
        for key, _ in sel.select(timeout=0.1):
            if stop:
                break
            try:
                conn, _ = key.fileobj.accept()
            except (BlockingIOError, InterruptedError):
                continue
            handle(board, conn, key.data, slot)
            if max_requests and board.field(REQUESTS) >= max_requests:
                stop.append(1)
    os._exit(0)


def handle(board, conn, proto, slot):
    conn.setblocking(True)
    conn.settimeout(5)
    data = b""
    try:
        if proto == "uwsgi":
            while len(data) < 4:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            size = struct.unpack_from("<H", data, 1)[0]
            while len(data) < 4 + size:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            line = "UWSGI /"
        else:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            line = " ".join(data.split(b"\r\n", 1)[0].decode().split(" ")[:2])
        board.core(RESPONSE_STARTED, 0)
        board.core(CLIENT_FD_PLUS_ONE, conn.fileno() + 1)
        board.label(line)
        board.core(REQUEST_START, max(1, time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000))
        if line.endswith(" /sleep"):
            time.sleep(60)
        body = ("%d %s %d" % (os.getpid(), proto, slot)).encode()
        board.core(RESPONSE_STARTED, 1)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (len(body), body))
    except OSError:
        pass
    finally:
        board.core(REQUEST_START, 0)
        board.core(CLIENT_FD_PLUS_ONE, 0)
        board.core(CORE_REQUESTS, board.core(CORE_REQUESTS) + 1)
        board.field(REQUESTS, board.field(REQUESTS) + 1)
        conn.close()


CLONE_PARENT = 0x8000
SYS_CLONE = 56  # x86_64


def zygote():
    mark("zygote")
    if os.environ.get("FAKE_MODE") == "need-app":
        os._exit(22)
    ctl = socket.socket(fileno=int(os.environ["LIEGE_ZYGOTE_FD"]))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    while True:
        msg = ctl.recv(512)
        if not msg:
            os._exit(0)
        kind, slot = msg.decode().split(" ")
        if kind != "spawn":
            continue
        pid = libc.syscall(ctypes.c_long(SYS_CLONE),
                           ctypes.c_ulong(CLONE_PARENT | signal.SIGCHLD),
                           ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0),
                           ctypes.c_ulong(0))
        if pid == 0:
            ctl.close()
            os.environ["LIEGE_WORKER_ID"] = slot
            try:
                serve(int(slot))
            finally:
                os._exit(1)
        if pid < 0:
            ctl.send(("failed %s errno %d" % (slot, ctypes.get_errno())).encode())
        else:
            ctl.send(("spawned %s %d" % (slot, pid)).encode())


if __name__ == "__main__":
    if os.environ.get("LIEGE_ROLE") == "zygote":
        zygote()
    else:
        serve(int(os.environ["LIEGE_WORKER_ID"]))
    sys.exit(0)
