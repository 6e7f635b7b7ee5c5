"""history_pages.py - the cost of one history page (POST /api/history, 40
publications) on the memory and Redis engines for a channel of 100 and of
20,000 kept publications, from the newest, from the middle (since) and by
since_time. Run from the repository root:
HERALD_BIN=build/herald python3 bench/history_pages.py (needs redis-server)."""
import os, sys, time, uuid
sys.path.insert(0, "tests/integration")
from herald_testlib import Herald
from herald_native import API_KEY, Api
from redis_cluster import RedisServer
r = RedisServer().start()
try:
    for engine in ("memory", "redis"):
        extra = ("--engine", "redis", "--redis", r.addr, "--redis-prefix", "b" + uuid.uuid4().hex[:6]) if engine == "redis" else ()
        with Herald("--api-key", API_KEY, "--channels.history-size", "100000", "--channels.history-ttl", "1h", *extra) as h:
            api = Api(h)
            for size in (100, 20000):
                ch = f"b{size}"
                for lo in range(0, size, 500):
                    api.call("batch", {"commands": [{"method": "publish", "params": {"channel": ch, "data": i}} for i in range(lo, min(lo + 500, size))]})
                ep = api.call("history", {"channel": ch, "limit": 0})["epoch"]
                for label, q in (("newest 40 reverse", {"limit": 40, "reverse": True}),
                                 ("40 from the middle", {"limit": 40, "since": {"offset": size // 2, "epoch": ep}}),
                                 ("since_time, 40", {"limit": 40, "since_time": 1})):
                    n = 200
                    t = time.perf_counter()
                    for _ in range(n):
                        api.call("history", dict(q, channel=ch))
                    dt = (time.perf_counter() - t) / n * 1e6
                    print(f"{engine:6} history {size:6}: {label:20} {dt:7.0f} us/request")
            api.close()
finally:
    r.kill()
