"""Triton Python-backend model: the workbook's ONNX detector in an ONNX Runtime session.

Runs inside Triton's Python backend stub, in the serving venv (.venv-serve, numpy<2), never in
the learner's kernel: it imports only numpy, onnxruntime and Triton's own utilities. The session
options are helpers.runtimes.OnnxRuntime's defaults (all graph optimisations, one inter-op
thread, no spinning), so the server computes what the in-process runtime computes and the drift
judge applies to its raw outputs. The ``intra_op_threads`` parameter in config.pbtxt sets the
thread count (0: ORT's choice, as in-process).

The dynamic batcher hands ``execute`` several requests at once; they run as one batch (that is
what batching buys) and the outputs are split back per request.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(params.get("intra_op_threads", "0"))
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.config_input = config["input"][0]["name"]
        self.output_names = [o["name"] for o in config["output"]]

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.config_input).as_numpy() for r in requests]
        batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        outputs = self.session.run(self.output_names, {self.input_name: batch})
        responses, start = [], 0
        for a in arrays:
            stop = start + a.shape[0]
            tensors = [pb_utils.Tensor(n, np.ascontiguousarray(o[start:stop])) for n, o in zip(self.output_names, outputs)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start = stop
        return responses

    def finalize(self):
        self.session = None
