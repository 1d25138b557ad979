#!/usr/bin/env python3
"""RTP traffic for benches/relay_load.sh (a benchmark tool, not a test).

Plays both ends of M bridged calls through a relay (sipacd or rtpengine):
every caller's RTP leaves from one "caller" socket, every agent's from one
"agent" socket, 50 packets per second per stream (PCMA, 20 ms, 172 bytes),
each stream with its own SSRC, sequence numbers and timestamps.

Where to send is learned the way a phone behind NAT is served (symmetric
RTP): a relay port that sends us a packet gets a stream back. For sipacd
the caller side learns from the caller leg's first audio (a short prompt),
the agent side from the first relayed packet. With --ng the tool first
creates M rtpengine sessions itself (offer/answer over the ng control
protocol: bencode over UDP), so the caller side knows where to send at
once, and the agent side learns as with sipacd.

Counts the packets received on both sockets (= packets the relay relayed)
during a window after a warm-up, samples utime+stime of --pid over the same
window, and prints key=value lines.
"""

import argparse
import os
import random
import select
import socket
import struct
import sys
import time

PTIME = 0.020
PAYLOAD = bytes([0xD5]) * 160  # A-law silence-ish; content does not matter here


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bind(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind(("127.0.0.1", port))
    s.setblocking(False)
    return s


class Streams:
    """One RTP stream per destination, sent from one socket."""

    def __init__(self, sock):
        self.sock = sock
        self.dest = {}  # addr -> [ssrc, seq, ts]
        self.rx = 0

    def add(self, addr):
        if addr not in self.dest:
            self.dest[addr] = [random.getrandbits(32), random.getrandbits(16), random.getrandbits(32)]

    def tick(self):
        hdr = struct.Struct("!BBHII")
        for addr, st in self.dest.items():
            pkt = hdr.pack(0x80, 8, st[1], st[2], st[0]) + PAYLOAD
            st[1] = (st[1] + 1) & 0xFFFF
            st[2] = (st[2] + 160) & 0xFFFFFFFF
            try:
                self.sock.sendto(pkt, addr)
            except OSError:
                pass

    def drain(self, learn, counting):
        n = 0
        while True:
            try:
                _, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            n += 1
            if learn:
                self.add(addr)
        if counting:
            self.rx += n


# --- rtpengine ng protocol: bencode over UDP -------------------------------


def benc(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(benc(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"d" + b"".join(benc(k) + benc(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(v)


def bdec(b, i=0):
    c = b[i : i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1 : j]), j + 1
    if c == b"l":
        i, out = i + 1, []
        while b[i : i + 1] != b"e":
            x, i = bdec(b, i)
            out.append(x)
        return out, i + 1
    if c == b"d":
        i, out = i + 1, {}
        while b[i : i + 1] != b"e":
            k, i = bdec(b, i)
            v, i = bdec(b, i)
            out[k.decode()] = v
        return out, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1 : j + 1 + n], j + 1 + n


def ng(ctl, addr, cmd):
    cookie = b"%x" % random.getrandbits(48)
    ctl.sendto(cookie + b" " + benc(cmd), addr)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r, _, _ = select.select([ctl], [], [], 0.5)
        if not r:
            ctl.sendto(cookie + b" " + benc(cmd), addr)
            continue
        data = ctl.recv(65536)
        c, _, body = data.partition(b" ")
        if c == cookie:
            reply, _ = bdec(body)
            if reply.get("result") != b"ok":
                raise RuntimeError(f"ng {cmd['command']}: {reply}")
            return reply
    raise RuntimeError(f"ng {cmd['command']}: no answer")


def sdp(port):
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )


def sdp_port(text):
    for line in text.decode().splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise RuntimeError("no m=audio in rtpengine's SDP")


def ng_sessions(args, caller):
    host, port = args.ng.rsplit(":", 1)
    addr = (host, int(port))
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ids = []
    for i in range(args.sessions):
        cid, ft, tt = f"bench-{os.getpid()}-{i}", f"ft{i}", f"tt{i}"
        flags = {"replace": ["origin"], "ICE": "remove"}
        ng(ctl, addr, {"command": "offer", "call-id": cid, "from-tag": ft, "sdp": sdp(args.caller_port), **flags})
        r = ng(ctl, addr, {"command": "answer", "call-id": cid, "from-tag": ft, "to-tag": tt,
                           "sdp": sdp(args.agent_port), **flags})
        # The answer's SDP goes to the caller: where the caller sends.
        caller.add(("127.0.0.1", sdp_port(r["sdp"])))
        ids.append((cid, ft))
    return ctl, addr, ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--caller-port", type=int, required=True)
    ap.add_argument("--agent-port", type=int, required=True)
    ap.add_argument("--pid", type=int, help="process whose CPU is sampled (default: the --pid-file's)")
    ap.add_argument("--pid-file")
    ap.add_argument("--expect", type=int, required=True, help="streams per side to wait for")
    ap.add_argument("--wait", type=float, default=60, help="max seconds to wait for them")
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--ng", help="rtpengine ng control HOST:PORT: create --sessions sessions first")
    ap.add_argument("--sessions", type=int, default=0)
    args = ap.parse_args()

    caller = Streams(bind(args.caller_port))
    agent = Streams(bind(args.agent_port))
    ng_state = ng_sessions(args, caller) if args.ng else None
    if args.ng:
        print(f"ng_sessions={len(ng_state[2])}", flush=True)
    pid = args.pid
    if pid is None and args.pid_file:
        pid = int(open(args.pid_file).read().strip())

    start = time.monotonic()
    phase = "wait"  # wait -> warmup -> window -> done
    ready_at = None
    nxt = start
    while True:
        now = time.monotonic()
        if now >= nxt:
            caller.tick()
            agent.tick()
            nxt += PTIME
            if nxt < now:  # fell behind: do not burst to catch up
                nxt = now + PTIME
        if phase == "wait":
            if len(caller.dest) >= args.expect and len(agent.dest) >= args.expect:
                phase, ready_at = "warmup", now
            elif now - start > args.wait:
                print(f"error=only {len(caller.dest)} caller and {len(agent.dest)} agent streams "
                      f"of {args.expect} after {args.wait} s", flush=True)
                break
        elif phase == "warmup" and now - ready_at >= args.warmup:
            phase = "window"
            w0, c0 = now, cpu_seconds(pid)
            caller.rx = agent.rx = 0
        elif phase == "window" and now - w0 >= args.window:
            w1, c1 = now, cpu_seconds(pid)
            rx_c, rx_a = caller.rx, agent.rx
            phase = "done"
            break
        r, _, _ = select.select([caller.sock, agent.sock], [], [], max(0.0, nxt - time.monotonic()))
        learn = phase == "wait"
        counting = phase == "window"
        if caller.sock in r:
            caller.drain(learn, counting)
        if agent.sock in r:
            agent.drain(learn, counting)

    if ng_state:
        ctl, addr, ids = ng_state
        for cid, ft in ids:
            try:
                ng(ctl, addr, {"command": "delete", "call-id": cid, "from-tag": ft})
            except RuntimeError:
                pass
    if phase != "done":
        sys.exit(1)
    wall, cpu = w1 - w0, c1 - c0
    relayed = rx_c + rx_a
    sent = 2 * args.expect * wall / PTIME
    print(f"streams={len(caller.dest)}+{len(agent.dest)}")
    print(f"window_s={wall:.2f}")
    print(f"relayed_pkts={relayed} (to callers {rx_c}, to agents {rx_a}; nominal sent {sent:.0f})")
    print(f"relayed_pps={relayed / wall:.0f}")
    print(f"cpu_s={cpu:.2f}")
    print(f"cpu_pct_of_one_core={100 * cpu / wall:.1f}")
    print(f"pkts_per_cpu_s={relayed / cpu:.0f}" if cpu > 0 else "pkts_per_cpu_s=inf")


if __name__ == "__main__":
    main()
