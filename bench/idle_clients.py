"""Opens N idle, logged-in client connections to the gateway and reports the gateway's
resident memory before and after. Usage: idle_clients.py HOST PORT SERVICE PASSWORD PID N"""
import socket, struct, sys, time

host, port, service, password, pid, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def msg(tag, body):
    return tag + struct.pack("!i", len(body) + 4) + body

def read_until_ready(s):
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("connection closed during login")
        buf += chunk
        i = 0
        while len(buf) - i >= 5:
            tag = buf[i:i+1]; ln = struct.unpack("!i", buf[i+1:i+5])[0]
            if len(buf) - i < 1 + ln:
                break
            if tag == b"R" and struct.unpack("!i", buf[i+5:i+9])[0] == 3:
                s.sendall(msg(b"p", password.encode() + b"\0"))
            if tag == b"E":
                raise SystemExit("login refused: " + buf[i+5:i+1+ln].decode(errors="replace"))
            if tag == b"Z":
                return
            i += 1 + ln
        buf = buf[i:]

before = rss_kib()
socks = []
params = b"user\0app\0database\0" + service.encode() + b"\0\0"
for _ in range(n):
    s = socket.create_connection((host, port))
    s.sendall(struct.pack("!ii", len(params) + 8, 196608) + params)
    read_until_ready(s)
    socks.append(s)
time.sleep(1.0)
after = rss_kib()
print(f"{n} {before} {after} {(after - before) / n:.1f}")
for s in socks:
    s.close()
