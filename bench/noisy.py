"""A noisy neighbour: one tenant runs more slow transactions at once than the pool has
connections, retrying refusals after 5 ms, while another tenant's query latency is measured:
idle first, then beside a noisy tenant held to its tier's limit, then beside one without
limits. The noisy clients are threads of one process, so that they load the gateway and the
pool rather than the 2 cores with Python. Prints a markdown table.
Usage: noisy.py GATEWAY_HOST PORT SERVICE QUIET_KEY LIMITED_KEY UNLIMITED_KEY SECONDS"""
import queue
import statistics
import sys
import threading
import time

import psycopg

host, port, service, quiet_key, limited_key, unlimited_key = sys.argv[1:7]
seconds = float(sys.argv[7])


def dsn(key):
    return f"host={host} port={port} dbname={service} user=app password={key}"


def hammer(key, stop, counts):
    """One noisy client: 20 ms transactions back to back; a refusal is retried after 5 ms."""
    done = refused = 0
    conn = psycopg.connect(dsn(key), autocommit=True)
    while not stop.is_set():
        try:
            conn.execute("SELECT pg_sleep(0.02), count(*) FROM items")
            done += 1
        except psycopg.Error:
            refused += 1
            if conn.closed:
                conn = psycopg.connect(dsn(key), autocommit=True)
            time.sleep(0.005)
    counts.put((done, refused))


def measure():
    conn = psycopg.connect(dsn(quiet_key), autocommit=True)
    lat = []
    end = time.time() + seconds
    while time.time() < end:
        t = time.perf_counter()
        conn.execute("SELECT value FROM items WHERE id = 1").fetchone()
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99)], len(lat)


def phase(key, clients):
    if key is None:
        return measure() + (0, 0)
    stop, counts = threading.Event(), queue.Queue()
    procs = [threading.Thread(target=hammer, args=(key, stop, counts)) for _ in range(clients)]
    for p in procs:
        p.start()
    time.sleep(1.0)
    result = measure()
    stop.set()
    totals = [counts.get() for _ in procs]
    for p in procs:
        p.join()
    return result + (sum(t[0] for t in totals), sum(t[1] for t in totals))


clients = 32
print("| quiet tenant's query | noisy clients | p50 ms | p99 ms | p50 vs idle | noisy transactions done | noisy refused (53300) |")
print("|---|---|---|---|---|---|---|")
idle = phase(None, 0)
print(f"| idle | 0 | {idle[0]:.2f} | {idle[1]:.2f} | 1.00 | - | - |")
for label, key in [("beside a noisy tenant at its limit (4 transactions)", limited_key),
                   ("beside a noisy tenant without limits", unlimited_key)]:
    r = phase(key, clients)
    print(f"| {label} | {clients} | {r[0]:.2f} | {r[1]:.2f} | {r[0] / idle[0]:.2f} | {r[3]} | {r[4]} |")
