"""Camera streams served through Triton Inference Server against in-process batching, one run.

    make serve-env && python benchmarks/serve.py      # tables + benchmarks/results/serve.json

The real pedestrian detector (its ONNX export, FP32, dynamic batch) runs three ways, on the same
preprocessed frame of OpenCV's vtest.avi (synthetic scenes without it):

- in-process: one loop takes the N streams' frames of each tick as one batch and runs it on
  helpers.runtimes.OnnxRuntime (how benchmarks/pipeline.py batches);
- Triton, dynamic batching on (``--queue-delay-us``, ``--max-batch``): N client threads, one
  request per frame, batched by the server;
- Triton, dynamic batching off: the same requests, each run alone.

Each stream sends at 15 and at 30 fps, phases spread evenly; a frame whose slot passes while the
stream's previous request is still out is dropped, as a live camera keeps only its newest frame.
"Streams served" is the largest N at which every configuration up to it kept up (at most
serve.DROP_BUDGET of the frames dropped). Latency runs from a frame's slot to its answer.
The overhead per request (batch 1, sequential) is the round trip minus the time Triton spent in the
model's execute on the same requests (its statistics): serialisation, HTTP transport, the queue and
the Python backend's shared-memory copies. The in-process ORT time is measured alongside.

Server and clients share the machine's cores here, as they do on one edge box; on a real site the
server has its own. The JSON records the CPU model and the load before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp (benchmarks/runtimes.py says why)

import torch  # noqa: E402

from helpers import bench, detect, export, models, runtimes, serve  # noqa: E402


def served(rows: list[dict], kind: str, fps: float) -> int:
    """The largest N such that N and every smaller N kept up."""
    best = 0
    for row in sorted((r for r in rows if r["kind"] == kind and r["fps"] == fps), key=lambda r: r["streams"]):
        if not row["keeps_up"]:
            break
        best = row["streams"]
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fps", type=float, nargs="+", default=[15, 30])
    p.add_argument("--max-streams", type=int, default=4)
    p.add_argument("--seconds", type=float, default=4.0, help="measured window per configuration")
    p.add_argument("--threads", type=int, default=2, help="ORT intra-op threads, in-process and in the server")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--queue-delay-us", type=int, default=5000,
                   help="the dynamic batcher's wait; the overhead is measured on the no-batching model")
    p.add_argument("--iters", type=int, default=30, help="sequential requests for the overhead")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "serve.json"))
    args = p.parse_args(argv)
    reason = serve.problem()
    if reason:
        sys.exit(f"benchmarks/serve.py needs the serving venv: {reason}")
    load_before = [round(x, 2) for x in os.getloadavg()]
    torch.set_num_threads(args.threads)

    model = models.pedestrian_detector()
    video = export.pedestrian_frames()
    print(f"frames: {video.source}")
    sample, _ = detect.Detector(model).preprocess([video.held_out[0]])
    onnx_path = export.export_onnx(model, torch.zeros(1, 3, 300, 300), ROOT / "build" / "models" / "pedestrian_serve_fp32.onnx",
                                   output_names=["box_encodings", "class_logits"])
    repo = serve.model_repository(onnx_path, ROOT / "build" / "serve" / "bench-repo", name="detector",
                                  max_batch=args.max_batch, queue_delay_us=args.queue_delay_us, intra_op_threads=args.threads)
    serve.model_repository(onnx_path, repo, name="detector_nobatch", max_batch=args.max_batch, queue_delay_us=None,
                           intra_op_threads=args.threads)

    rows = []
    with serve.start(repo, name="benchmark") as server, runtimes.OnnxRuntime(onnx_path, intra_op_threads=args.threads) as local:
        overhead = serve.request_overhead(server.url, local, sample, iters=args.iters, model="detector_nobatch")
        for fps in args.fps:
            for n in range(1, args.max_streams + 1):
                measured = [serve.inprocess_streams(local, sample, n, fps, args.seconds),
                            serve.triton_streams(server.url, sample, n, fps, args.seconds, model="detector"),
                            serve.triton_streams(server.url, sample, n, fps, args.seconds, model="detector_nobatch")]
                for row in measured:
                    print(f"{row['kind']:<32} {fps:>4.0f} fps x {n}: {row['throughput_fps']:6.1f} fps served, "
                          f"p50 {row['p50_ms']:6.1f} ms, p95 {row['p95_ms']:6.1f} ms, dropped {row['dropped_fraction']:.0%}")
                rows.extend(measured)
    load_after = [round(x, 2) for x in os.getloadavg()]

    kinds = {"in-process batched": f"in-process:{local.name}", "Triton dynamic batching": "triton:detector",
             "Triton no batching": "triton:detector_nobatch"}
    print(f"\nStreams served (<= {serve.DROP_BUDGET:.0%} of frames dropped), pedestrian detector FP32, {args.threads} threads")
    print(f"{'':<26}" + "".join(f"{fps:>8.0f} fps" for fps in args.fps))
    streams = {}
    for label, kind in kinds.items():
        streams[label] = {str(int(fps)): served(rows, kind, fps) for fps in args.fps}
        print(f"{label:<26}" + "".join(f"{streams[label][str(int(fps))]:>12}" for fps in args.fps))
    print(f"\nPer request at batch 1: round trip {overhead['client_ms']} ms, of which the model's execute in Triton "
          f"{overhead['compute_ms']} ms: overhead {overhead['overhead_ms']} ms (serialisation, HTTP, queue "
          f"{overhead['queue_ms']} ms, the Python backend's copies); in-process ORT {overhead['in_process_ms']} ms")
    print(f"CPU {export.cpu_summary()['model']}; load average before {load_before}, after {load_after}")
    bench.write_results(args.json, {
        "benchmark": "serve", "model": "pedestrian_detector fp32 (ONNX, dynamic batch)", "frames": video.source,
        "threads": args.threads, "max_batch": args.max_batch, "queue_delay_us": args.queue_delay_us,
        "seconds_per_configuration": args.seconds, "drop_budget": serve.DROP_BUDGET,
        "streams_served": streams, "overhead_per_request": overhead, "rows": rows,
        "cpu": export.cpu_summary(), "load_average_before": load_before, "load_average_after": load_after,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    })


if __name__ == "__main__":
    main()
