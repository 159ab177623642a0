#!/usr/bin/env python3
"""Reads a Prometheus histogram from a /metrics page and prints count, p50, p95 and p99
(linear interpolation inside buckets, as Prometheus' histogram_quantile does)."""
import re
import sys
import urllib.request

url, name = sys.argv[1], sys.argv[2]
text = urllib.request.urlopen(url, timeout=10).read().decode()
buckets = []
for line in text.splitlines():
    m = re.match(rf'{name}_bucket\{{le="([^"]+)"\}} (\S+)', line)
    if m:
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        buckets.append((le, float(m.group(2))))
buckets.sort()
total = buckets[-1][1] if buckets else 0
def q(p):
    rank = p * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 0)
        prev_le, prev_c = le, c
    return float("nan")
print(f"{name}: count={int(total)} p50={q(0.5)*1000:.0f}ms p95={q(0.95)*1000:.0f}ms p99={q(0.99)*1000:.0f}ms")
