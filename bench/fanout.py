"""``python -m bench fanout``: N realtime subscribers on a Directus cluster, held by one CPython
process with ``directus_realtime`` and by one Node 22 process with ``@directus/sdk`` 26, and a
writer at a fixed rate; and creates per second on one SQLite Directus vs the cluster.

It starts a cluster of its own (``stack.cluster``, ports 8400-8449, var/bench-cluster/) and an
extra SQLite Directus on a copy of the local stack's database, and stops them at the end. Per
N and per client library: delivery latency p50/p99 (the writer puts its send time in each
text; the client's receive time minus it), deliveries per second, client CPU per delivery
(utime + stime of the client process over the writing window) and the client's peak memory
(VmHWM). Prints a Markdown table; ``--json`` writes the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from stack import cluster as cluster_stack
from stack import credentials, directus, paths, procs

SDK_ENTRY = paths.RUNTIME_NODE_MODULES / "@directus" / "sdk" / "dist" / "index.js"
HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


# ----- the CPython side (a child process) --------------------------------------------------


async def _hold(token: str, n: int, urls: list[str]) -> None:
    from directus_realtime import RealtimeClient

    latencies: list[float] = []
    counts = {"inits": 0, "events": 0}

    def on_message(message: dict) -> None:
        now = time.time() * 1000
        if message.get("event") == "init":
            counts["inits"] += 1
            if counts["inits"] == n:
                print("READY", flush=True)
            return
        for row in message.get("data") or []:
            parts = str(row.get("text", "")).split(" ")
            if len(parts) > 1 and parts[1].isdigit():
                latencies.append(now - int(parts[1]))
            counts["events"] += 1

    clients = []
    for i in range(0, n, 50):
        batch = [
            RealtimeClient(urls[(i + j) % len(urls)], access_token=token, reconnect=False)
            for j in range(min(50, n - i))
        ]
        await asyncio.gather(*(c.connect() for c in batch))
        for client in batch:
            # The SDK's frame, byte for byte (it sends the fields as one string).
            sub = await client.subscribe("messages", event="create", query={"fields": "id,text"})
            sub.listen(on_message)
        clients += batch
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or "STOP" in line:
            break
        if "COUNT" in line:
            print(counts["events"], flush=True)
    print(json.dumps({"events": counts["events"], "latencies": latencies}), flush=True)
    for client in clients:
        client.disconnect()


# ----- the parent ---------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Writer(threading.Thread):
    def __init__(self, url: str, token: str, rate: float, count: int) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.rate, self.count = url, token, rate, count
        self.done = 0

    def run(self) -> None:
        next_at = time.monotonic()
        for _ in range(self.count):
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = {"id": str(uuid.uuid4()), "text": f"fanout {int(time.time() * 1000)}"}
            request = urllib.request.Request(
                self.url + "/items/messages?fields=id",
                data=json.dumps(body).encode(),
                method="POST",
                headers={
                    "Authorization": "Bearer " + self.token,
                    "Content-Type": "application/json",
                },
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
            self.done += 1
            next_at += 1.0 / self.rate


LIBS = {
    "python": "directus_realtime (CPython)",
    "node": "@directus/sdk (Node), `for await` as in the guide",
    "node-listener": "@directus/sdk (Node), an `onWebSocket` listener",
}


def _client_argv(lib: str, token: str, n: int, urls: list[str]) -> list[str]:
    if lib == "python":
        return [paths.python(), "-m", "bench.fanout", "--child", token, str(n), *urls]
    return [str(paths.NODE), str(HERE / "fanout_sdk.mjs"), str(SDK_ENTRY), token, str(n), *urls]


def measure(lib: str, n: int, urls: list[str], writer_url: str, token: str, args) -> dict:
    log_file = paths.VAR / f"bench-fanout-{lib}-{n}.log"
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            _client_argv(lib, token, n, urls),
            cwd=paths.ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        t0 = time.monotonic()
        line = proc.stdout.readline()  # READY
        if line.strip() != "READY":
            raise RuntimeError(
                f"{lib} client with {n} subscribers did not get ready; log {log_file}:\n"
                + procs.log_tail(log_file, 10)
            )
        ready_s = time.monotonic() - t0
        time.sleep(1.0)
        cpu0, w0 = _cpu_seconds(proc.pid), time.monotonic()
        writer = Writer(writer_url, token, args.rate, int(args.rate * args.seconds))
        writer.start()
        writer.join()
        time.sleep(args.drain)  # the last events' fan-out
        cpu1, w1 = _cpu_seconds(proc.pid), time.monotonic()
        rss = _peak_rss_mb(proc.pid)
        proc.stdin.write("STOP\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline())
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    latencies = result["latencies"]
    events = result["events"]
    expected = n * writer.done
    return {
        "lib": lib,
        "n": n,
        "connect_s": round(ready_s, 1),
        "expected": expected,
        "delivered": events,
        "p50_ms": round(_percentile(latencies, 0.5), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "per_s": round(events / (w1 - w0), 1),
        "cpu_us_per_msg": round((cpu1 - cpu0) / max(events, 1) * 1e6, 1),
        "peak_rss_mb": round(rss, 1),
    }


# ----- the client-only run: a synthetic server instead of Directus ----------------------------

WS_MODULE = paths.DIRECTUS_DIR / "node_modules" / "ws" / "wrapper.mjs"


class SyntheticServer:
    """bench/fanout_server.mjs: handshake, ``init`` and ``create`` frames, nothing behind them."""

    def __init__(self) -> None:
        port = procs.free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [str(paths.NODE), str(HERE / "fanout_server.mjs"), str(WS_MODULE), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.proc.stdout.readline().strip() != "LISTENING":
            self.stop()
            raise RuntimeError("the synthetic server did not start")

    def _ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def push(self, creates: int, per_second: float) -> float:
        """Send ``creates`` events to every subscriber; the seconds the server took."""
        answer = self._ask(f"PUSH {creates} {per_second}").split()
        return int(answer[2]) / 1000

    def frames(self) -> dict[str, int]:
        return json.loads(self._ask("FRAMES"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Child:
    """One client process holding N subscriptions (either library)."""

    def __init__(self, lib: str, n: int, url: str, token: str) -> None:
        self.lib, self.n = lib, n
        self.log_file = paths.VAR / f"bench-fanout-{lib}-{n}.log"
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(
                _client_argv(lib, token, n, [url]),
                cwd=paths.ROOT,
                env={**os.environ, "FANOUT_SDK_LISTENER": "1" if lib == "node-listener" else ""},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        t0 = time.monotonic()
        if self.proc.stdout.readline().strip() != "READY":
            self.close()
            raise RuntimeError(
                f"{lib} client with {n} subscribers did not get ready; log {self.log_file}:\n"
                + procs.log_tail(self.log_file, 10)
            )
        self.ready_s = time.monotonic() - t0

    def _ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def count(self) -> int:
        return int(self._ask("COUNT"))

    def wait_for(self, events: int, timeout: float) -> tuple[int, float]:
        """Poll until ``events`` came or ``timeout`` passed: (events, monotonic time seen)."""
        stop = time.monotonic() + timeout
        while True:
            got = self.count()
            if got >= events or time.monotonic() > stop:
                return got, time.monotonic()
            time.sleep(0.02)

    def cpu(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def finish(self) -> dict:
        rss = _peak_rss_mb(self.proc.pid)
        result = json.loads(self._ask("STOP"))
        result["peak_rss_mb"] = rss
        self.close()
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def measure_synthetic(lib: str, n: int, rate: float, server: SyntheticServer, token: str, args):
    """One client process with ``n`` subscriptions: ``rate`` events/s (all sockets together)
    for ``args.seconds``, then a burst as fast as the server sends (``args.burst_creates``
    creates), to see how many events per second the process takes."""
    child = Child(lib, n, server.url, token)
    try:
        time.sleep(1.0)
        creates = max(1, round(rate * args.seconds / n))
        expected = creates * n
        cpu0, t0 = child.cpu(), time.monotonic()
        server.push(creates, rate / n)
        got, t1 = child.wait_for(expected, args.drain)
        cpu1 = child.cpu()
        burst = args.burst_creates
        cpu2, t2 = child.cpu(), time.monotonic()
        server.push(burst, 1000.0)
        got_burst, t3 = child.wait_for(expected + burst * n, args.drain)
        cpu3 = child.cpu()
        result = child.finish()
    finally:
        child.close()
    paced = result["latencies"][:expected]
    return {
        "lib": lib,
        "n": n,
        "rate": rate,
        "connect_s": round(child.ready_s, 1),
        "expected": expected,
        "delivered": got,
        "p50_ms": round(_percentile(paced, 0.5), 1),
        "p99_ms": round(_percentile(paced, 0.99), 1),
        "cpu_us_per_msg": round((cpu1 - cpu0) / max(got, 1) * 1e6, 1),
        "cpu_share": round((cpu1 - cpu0) / (t1 - t0), 2),
        "burst_expected": burst * n,
        "burst_delivered": got_burst - got,
        "burst_per_s": round((got_burst - got) / (t3 - t2)),
        "burst_cpu_us_per_msg": round((cpu3 - cpu2) / max(got_burst - got, 1) * 1e6, 1),
        "peak_rss_mb": round(result["peak_rss_mb"], 1),
        "load": os.getloadavg()[0],
    }


def main_synthetic(args) -> int:
    token = "synthetic"  # the synthetic server accepts any
    rows = []
    server = SyntheticServer()
    try:
        libs = args.libs.split(",")
        for repeat in range(args.repeats):
            for rate in [float(x) for x in args.rates.split(",")]:
                for n in [int(x) for x in args.n.split(",")]:
                    # Interleaved, and the first library alternates: both see the same load.
                    for lib in libs if repeat % 2 == 0 else libs[::-1]:
                        row = measure_synthetic(lib, n, rate, server, token, args)
                        row["repeat"] = repeat
                        print(json.dumps(row), flush=True)
                        rows.append(row)
        frames = server.frames()
    finally:
        server.stop()
    print(report_synthetic(rows, frames))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "frames": frames}, indent=2) + "\n")
    return 0


def _spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    values = sorted(values)
    median = values[len(values) // 2]
    if len(values) == 1:
        return fmt.format(median)
    return (fmt + " ({}-{})").format(median, fmt.format(values[0]), fmt.format(values[-1]))


def report_synthetic(rows: list[dict], frames: dict[str, int]) -> str:
    lines = [
        "Distinct subscribe frames the server received (uid as <uid>), and how many sockets "
        "sent each:",
        "",
        *[f"- `{frame}`: {count:,}" for frame, count in frames.items()],
        "",
        "Median of the repeats (min-max).",
        "",
        "| N | events/s | client | delivered | CPU µs/event | p50 ms | p99 ms | CPU share "
        "| burst events/s | burst CPU µs/event | peak RSS MB | load |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["n"], r["rate"], r["lib"]), []).append(r)
    for (n, rate, lib), rs in groups.items():
        name = LIBS[lib]
        delivered = ", ".join(f"{r['delivered']:,}/{r['expected']:,}" for r in rs)
        bursts = ", ".join(f"{r['burst_delivered']:,}/{r['burst_expected']:,}" for r in rs)
        lines.append(
            f"| {n:,} | {rate:,.0f} | {name} | {delivered}; burst {bursts} "
            f"| {_spread([r['cpu_us_per_msg'] for r in rs], '{:.1f}')} "
            f"| {_spread([r['p50_ms'] for r in rs], '{:.1f}')} "
            f"| {_spread([r['p99_ms'] for r in rs], '{:.1f}')} "
            f"| {_spread([r['cpu_share'] for r in rs], '{:.2f}')} "
            f"| {_spread([r['burst_per_s'] for r in rs])} "
            f"| {_spread([r['burst_cpu_us_per_msg'] for r in rs], '{:.1f}')} "
            f"| {_spread([r['peak_rss_mb'] for r in rs])} "
            f"| {_spread([r['load'] for r in rs], '{:.1f}')} |"
        )
    return "\n".join(lines)


def creates_per_second(url: str, token: str, seconds: float, workers: int = 8) -> float:
    stop = time.monotonic() + seconds
    done = [0] * workers

    def work(i: int) -> None:
        while time.monotonic() < stop:
            body = {"id": str(uuid.uuid4()), "text": "fanout burst"}
            request = urllib.request.Request(
                url + "/items/messages?fields=id",
                data=json.dumps(body).encode(),
                method="POST",
                headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
            done[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - t0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        token, n, *urls = argv[1:]
        asyncio.run(_hold(token, int(n), urls))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench fanout", description=__doc__)
    parser.add_argument("--n", default="100,500,1000", help="subscriber counts (comma-separated)")
    parser.add_argument("--libs", default="python,node")
    parser.add_argument("--rate", type=float, default=1.0, help="writes per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of writing")
    parser.add_argument("--drain", type=float, default=15.0, help="seconds for the last events")
    parser.add_argument("--burst", type=float, default=5.0, help="seconds of create bursts")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="no Directus: a synthetic server (bench/fanout_server.mjs) pushes the events, so "
        "only the client processes are measured",
    )
    parser.add_argument(
        "--rates", default="2000,10000", help="--synthetic: events/s, all sockets together"
    )
    parser.add_argument("--repeats", type=int, default=3, help="--synthetic: runs of each")
    parser.add_argument(
        "--burst-creates", type=int, default=20, help="--synthetic: creates sent at full speed"
    )
    args = parser.parse_args(argv)
    if args.synthetic:
        return main_synthetic(args)
    if not cluster_stack.installed():
        print(f"the cluster needs {cluster_stack.PACKAGES} (make cluster-packages)")
        return 1
    token = credentials.load()["demo_token"]
    ports = [procs.free_port() for _ in range(5)]
    root = paths.VAR / "bench-cluster"
    shutil.rmtree(root, ignore_errors=True)
    cluster = cluster_stack.Cluster(
        root,
        cluster_stack.ClusterPorts(ports[0], (ports[1], ports[2]), ports[3], ports[4]),
        app_port=paths.app_port(),
        say=lambda m: print(f"[cluster] {m}", flush=True),
    )
    single = None
    rows: list[dict[str, Any]] = []
    bursts: dict[str, float] = {}
    try:
        cluster.start()
        urls = [i.url for i in cluster.instances]
        for n in [int(x) for x in args.n.split(",")]:
            for lib in args.libs.split(","):
                try:
                    row = measure(lib, n, urls, cluster.url, token, args)
                except RuntimeError as error:
                    print(f"{lib} N={n}: {error}", flush=True)
                    row = {"lib": lib, "n": n, "failed": str(error).splitlines()[0]}
                print(json.dumps(row), flush=True)
                rows.append(row)
        bursts["cluster (HAProxy, 2 instances, PostgreSQL)"] = creates_per_second(
            cluster.url, token, args.burst
        )
        tmp = paths.VAR / "bench-single"
        shutil.rmtree(tmp, ignore_errors=True)
        db = directus.copy_of_main_db(tmp)
        single = directus.start_directus(procs.free_port(), db, log_file=tmp / "directus.log")
        bursts["one Directus on SQLite"] = creates_per_second(single.url, token, args.burst)
    finally:
        if single is not None:
            directus.stop(single)
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(report(rows, bursts, args))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "bursts": bursts}, indent=2) + "\n")
    return 0


def report(rows: list[dict], bursts: dict[str, float], args) -> str:
    lines = [
        f"Writer {args.rate:g}/s for {args.seconds:g} s through HAProxy; subscribers spread "
        "over both instances.",
        "",
        "| N | client | connect+subscribe s | delivered | p50 ms | p99 ms | deliveries/s "
        "| CPU µs/delivery | peak RSS MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = "directus_realtime (CPython)" if r["lib"] == "python" else "@directus/sdk (Node)"
        if "failed" in r:
            lines.append(f"| {r['n']:,} | {name} | {r['failed']} | | | | | | |")
            continue
        lines.append(
            f"| {r['n']:,} | {name} | {r['connect_s']} | {r['delivered']:,}/{r['expected']:,} "
            f"| {r['p50_ms']} | {r['p99_ms']} | {r['per_s']:,} | {r['cpu_us_per_msg']} "
            f"| {r['peak_rss_mb']} |"
        )
    lines += ["", "| creates per second (8 concurrent writers) | |", "|---|---:|"]
    lines += [f"| {name} | {value:.0f} |" for name, value in bursts.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
