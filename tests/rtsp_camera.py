#!/usr/bin/env python3
"""A camera's RTSP server on loopback, for `tests/integration/live.rs`.

Debian packages no RTSP server, and its ffmpeg can publish or receive RTSP but not serve a stream to
a client that asks for it, which is what an NVR does with a camera. This script is that camera:
it answers OPTIONS, DESCRIBE, SETUP (RTP over the RTSP connection, or over UDP), PLAY,
GET_PARAMETER and TEARDOWN, and on PLAY starts an ffmpeg that sends the clip's video at its own
rate (`-re`, copied, no re-encoding) as RTP to a local UDP port; every packet it gets there goes
on to the client. Each PLAY starts the clip from its first frame, so a test knows which frame it
is looking at. Standard library only.

    python3 tests/rtsp_camera.py CLIP PORT
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import threading

# Sends RTP to clients that asked for UDP.
SENDER = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def sdp_of(clip):
    """The clip's SDP as ffmpeg's RTP muxer writes it (SPS and PPS included), one media line."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "clip.sdp")
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", clip, "-an", "-c:v", "copy", "-frames:v", "1",
             "-f", "rtp", "-sdp_file", path, "rtp://127.0.0.1:9"],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        with open(path) as f:
            text = f.read()
    lines = []
    for line in text.splitlines():
        if line.startswith("SDP:") or not line.strip():
            continue
        if line.startswith("c="):
            line = "c=IN IP4 0.0.0.0"
        if line.startswith("m=video"):
            line = re.sub(r"^m=video \d+", "m=video 0", line)
            lines.append(line)
            lines.append("a=control:track0")
            continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


class Client(threading.Thread):
    """One RTSP connection: requests answered in order; after PLAY, RTP forwarded to it."""

    def __init__(self, conn, clip, sdp):
        super().__init__(daemon=True)
        self.conn, self.clip, self.sdp = conn, clip, sdp
        self.lock = threading.Lock()
        self.udp_to = None  # (rtp address, rtcp address) when the client asked for UDP
        self.ffmpeg = None
        self.open = True

    def send(self, text):
        with self.lock:
            self.conn.sendall(text.encode())

    def reply(self, cseq, extra=(), body=""):
        head = ["RTSP/1.0 200 OK", f"CSeq: {cseq}"] + list(extra)
        if body:
            head.append(f"Content-Length: {len(body.encode())}")
        self.send("\r\n".join(head) + "\r\n\r\n" + body)

    def forward(self, sock, channel):
        while self.open:
            try:
                packet = sock.recv(65536)
            except OSError:
                return
            try:
                if self.udp_to:
                    SENDER.sendto(packet, self.udp_to[channel])
                else:
                    with self.lock:
                        self.conn.sendall(b"$" + bytes([channel]) + len(packet).to_bytes(2, "big")
                                          + packet)
            except OSError:
                self.open = False
                return

    def play(self):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtcp.bind(("127.0.0.1", port + 1))
        except OSError:
            rtcp = None
        for sock, channel in ((rtp, 0), (rtcp, 1)):
            if sock is not None:
                threading.Thread(target=self.forward, args=(sock, channel), daemon=True).start()
        target = f"rtp://127.0.0.1:{port}" + ("" if rtcp else "?rtcpport=9")
        self.ffmpeg = subprocess.Popen(
            ["ffmpeg", "-v", "error", "-re", "-i", self.clip, "-an", "-c:v", "copy", "-f", "rtp",
             target], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def run(self):
        buf = b""
        try:
            while self.open:
                data = self.conn.recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    if buf[:1] == b"$":  # RTCP from the client over TCP: read past it
                        if len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[2:4], "big"):
                            break
                        buf = buf[4 + int.from_bytes(buf[2:4], "big"):]
                        continue
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = buf[:end].decode(errors="replace").split("\r\n")
                    fields = {}
                    for line in head[1:]:
                        key, _, value = line.partition(":")
                        fields[key.strip().lower()] = value.strip()
                    length = int(fields.get("content-length", "0"))
                    if len(buf) < end + 4 + length:
                        break
                    buf = buf[end + 4 + length:]
                    self.answer(head[0].split(" "), fields)
        except OSError:
            pass
        finally:
            self.open = False
            if self.ffmpeg:
                self.ffmpeg.kill()
                self.ffmpeg.wait()
            self.conn.close()

    def answer(self, request, fields):
        method, url = request[0], request[1] if len(request) > 1 else ""
        cseq = fields.get("cseq", "0")
        if method == "OPTIONS":
            self.reply(cseq, ["Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"])
        elif method == "DESCRIBE":
            base = url.rstrip("/") + "/"
            self.reply(cseq, ["Content-Type: application/sdp", f"Content-Base: {base}"],
                       self.sdp)
        elif method == "SETUP":
            transport = fields.get("transport", "")
            ports = re.search(r"client_port=(\d+)-(\d+)", transport)
            if "TCP" in transport or not ports:
                answer = "RTP/AVP/TCP;unicast;interleaved=0-1"
            else:
                host = self.conn.getpeername()[0]
                self.udp_to = ((host, int(ports.group(1))), (host, int(ports.group(2))))
                answer = (f"RTP/AVP;unicast;client_port={ports.group(1)}-{ports.group(2)};"
                          "server_port=6970-6971")
            self.reply(cseq, [f"Transport: {answer}", "Session: 4e2b1d;timeout=60"])
        elif method == "PLAY":
            self.reply(cseq, ["Session: 4e2b1d", "Range: npt=0.000-"])
            if self.ffmpeg is None:
                self.play()
        elif method == "TEARDOWN":
            self.reply(cseq, ["Session: 4e2b1d"])
            self.open = False
        else:  # GET_PARAMETER (keep-alive), SET_PARAMETER, PAUSE
            self.reply(cseq, ["Session: 4e2b1d"])



def main():
    clip, port = sys.argv[1], int(sys.argv[2])
    sdp = sdp_of(clip)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(4)
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        Client(conn, clip, sdp).start()


if __name__ == "__main__":
    main()
