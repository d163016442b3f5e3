"""Hostile load against a running `tuneup serve`: malformed and hostile requests from several threads while one
well-formed client keeps asking, as in issue 21 ("Under load").

    python scripts/load_hostile.py --base-url http://127.0.0.1:8080 --model smollm2-135m \
        --requests 1000 --threads 8 [--json out.json]

Kinds of hostile requests (cycled): wrong field types, a 3 MB string, JSON nested 100 000 deep, invalid UTF-8,
huge stop lists, absurd `max_tokens`, unknown models, `text/plain` bodies, a foreign `Host`, half a header then
silence, and streaming clients that hang up after the first bytes. Every answered request must be a 4xx with
OpenAI's error JSON; streams cut by the client and stalled headers are counted apart (they get no answer by
design). Meanwhile a well-formed client (greedy, `max_tokens` 8) measures its latency, compared with its idle
latency measured first. Only the standard library is used.
"""

import argparse
import http.client
import json
import socket
import statistics
import threading
import time
from urllib.parse import urlparse


def kinds(model):
    msgs = [{"role": "user", "content": "hi"}]
    ok = {"model": model, "messages": msgs, "max_tokens": 4}

    def body(**over):
        b = dict(ok)
        b.update(over)
        return json.dumps(b).encode()

    deep = b"[" * 100_000 + b"]" * 100_000
    return [
        ("wrong types", body(temperature="hot"), {}),
        ("messages not a list", body(messages="hello"), {}),
        ("huge string", body(messages=[{"role": "user", "content": "x" * 3_000_000}], max_tokens=1), {}),
        ("deep JSON", b'{"model": "' + model.encode() + b'", "messages": ' + deep + b"}", {}),
        ("invalid UTF-8", b'{"model": "' + model.encode() + b'", "messages": [{"role": "user", "content": "\xff\xfe"}]}', {}),
        ("huge stop list", body(stop=["z" * 40_000] * 90), {}),
        ("absurd max_tokens", body(max_tokens=10**30), {}),
        ("negative max_tokens", body(max_tokens=-1), {}),
        ("unknown model", body(model="gpt-9"), {}),
        ("text/plain body", body(), {"Content-Type": "text/plain"}),
        ("foreign Host", body(), {"Host": "evil.example"}),
        ("web page Origin", body(), {"Origin": "https://evil.example"}),
    ]


def send(url, path, payload, headers, timeout=60):
    u = urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers)
    try:
        c.putrequest("POST", path, skip_host="Host" in h)
        for k, v in h.items():
            c.putheader(k, v)
        c.putheader("Content-Length", str(len(payload)))
        c.endheaders()
        c.send(payload)
        r = c.getresponse()
        data = r.read()
        return r.status, data
    finally:
        c.close()


def stalled_header(url):
    """Half a header, then silence: the server must close the connection."""
    u = urlparse(url)
    s = socket.create_connection((u.hostname, u.port), timeout=120)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    start = time.time()
    try:
        closed = s.recv(4096) == b""
    except (ConnectionResetError, socket.timeout):
        closed = True
    s.close()
    return time.time() - start, closed


def broken_stream(url, model):
    u = urlparse(url)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    b = json.dumps({"model": model, "stream": True, "max_tokens": 64,
                    "messages": [{"role": "user", "content": "tell me a story"}]}).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              + b"Content-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b)
    s.recv(64)
    s.close()


def well_formed(url, model):
    b = json.dumps({"model": model, "max_tokens": 8, "temperature": 0,
                    "messages": [{"role": "user", "content": "Name a prime number."}]}).encode()
    t = time.time()
    status, _ = send(url, "/v1/chat/completions", b, {})
    return status, time.time() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", required=True)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--json")
    a = ap.parse_args()
    url = a.base_url.rstrip("/").removesuffix("/v1")

    idle = [well_formed(url, a.model)[1] for _ in range(6)][1:]
    table = kinds(a.model)
    results, lock = [], threading.Lock()
    counter = iter(range(a.requests))

    def hostile():
        for i in counter:
            name, payload, headers = table[i % len(table)] if i % 20 not in (18, 19) else (None, None, None)
            try:
                if i % 20 == 18:
                    broken_stream(url, a.model)
                    rec = ("broken stream", "hung up", True)
                elif i % 20 == 19:
                    took, closed = stalled_header(url)
                    rec = ("stalled header", f"closed after {took:.1f} s" if closed else "kept open", closed)
                else:
                    status, data = send(url, "/v1/chat/completions", payload, headers)
                    try:
                        err = json.loads(data)["error"]
                        shaped = all(k in err for k in ("message", "type", "param", "code"))
                    except Exception:
                        shaped = False
                    rec = (name, status, 400 <= status < 500 and shaped)
            except Exception as e:  # a crash or a reset shows here
                rec = (name or "?", f"exception {type(e).__name__}: {e}", False)
            with lock:
                results.append(rec)

    threads = [threading.Thread(target=hostile) for _ in range(a.threads)]
    for t in threads:
        t.start()
    busy = []
    while any(t.is_alive() for t in threads):
        status, took = well_formed(url, a.model)
        busy.append((status, took))
    for t in threads:
        t.join()

    by_kind = {}
    for name, status, good in results:
        k = by_kind.setdefault(name, {"count": 0, "ok": 0, "answers": {}})
        k["count"] += 1
        k["ok"] += bool(good)
        k["answers"][str(status) if not str(status).startswith("closed") else "closed"] = \
            k["answers"].get(str(status) if not str(status).startswith("closed") else "closed", 0) + 1
    alive = well_formed(url, a.model)[0] == 200
    idle_p50 = statistics.median(idle)
    busy_ok = [t for s, t in busy if s == 200]
    report = {
        "hostile_requests": len(results),
        "as_expected": sum(1 for _, _, g in results if g),
        "by_kind": by_kind,
        "server_alive_after": alive,
        "well_formed_idle_p50_s": round(idle_p50, 3),
        "well_formed_under_load_p50_s": round(statistics.median(busy_ok), 3) if busy_ok else None,
        "well_formed_under_load_max_s": round(max(busy_ok), 3) if busy_ok else None,
        "well_formed_requests": len(busy),
        "well_formed_failures": sum(1 for s, _ in busy if s != 200),
    }
    print(json.dumps(report, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    bad = report["as_expected"] != report["hostile_requests"] or not alive or report["well_formed_failures"]
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
