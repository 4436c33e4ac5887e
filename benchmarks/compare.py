"""Compare two benchmark JSON files (two machines, or before and after a change).

    python benchmarks/compare.py build/benchmarks.json other-machine/benchmarks.json

Walks both files, pairs every "median_ms" found at the same path, and prints A, B and B/A.
The machines' environment fingerprints (CPU, GPU, library versions) are printed first:
a ratio only means something once you know what differed.
"""

from __future__ import annotations

import json
import sys


def medians(node, path=()):
    if isinstance(node, dict):
        if "median_ms" in node and isinstance(node["median_ms"], (int, float)):
            yield "/".join(path), float(node["median_ms"])
        for k, v in node.items():
            if k != "environment":
                yield from medians(v, path + (str(k),))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            label = v.get("backend") or v.get("label") or str(i) if isinstance(v, dict) else str(i)
            yield from medians(v, path + (f"{v.get('size', '')} {label}".strip() if isinstance(v, dict) else label,))


def fingerprint(doc) -> str:
    e = doc.get("environment", {})
    cuda = e.get("cuda") if isinstance(e.get("cuda"), dict) else {}
    gpus = [d.get("name") for d in cuda.get("devices", [])]  # env.probe()'s key
    return f"{e.get('platform', {})} | GPUs {gpus or 'none'} | {doc.get('date', '?')}"


def main(argv=None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    if len(argv) != 2:
        print(__doc__)
        return 2
    a, b = (json.load(open(p)) for p in argv)
    print(f"A: {argv[0]}\n   {fingerprint(a)}\nB: {argv[1]}\n   {fingerprint(b)}\n")
    ma, mb = dict(medians(a)), dict(medians(b))
    print(f"{'measurement':<70}{'A ms':>10}{'B ms':>10}{'B/A':>8}")
    for key in sorted(set(ma) & set(mb)):
        print(f"{key[:69]:<70}{ma[key]:>10.2f}{mb[key]:>10.2f}{mb[key] / ma[key]:>8.2f}")
    only = sorted(set(ma) ^ set(mb))
    if only:
        print(f"\n{len(only)} measurements exist in one file only (a runtime one machine lacks), e.g. {only[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
