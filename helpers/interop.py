"""Zero-copy hand-offs between array libraries, and how to prove there was no copy.

Two protocols carry a pointer, a shape and a dtype from one library to another without
touching the pixels:

- ``__array_interface__`` (host memory; numpy's) and ``__cuda_array_interface__`` (device
  memory; Numba's, adopted by CuPy, PyTorch, VPI, cuDF): a dict on the producer object.
- DLPack: a capsule handed over once (``torch.from_dlpack(x)``, ``cupy.from_dlpack(t)``),
  which also carries the producer's stream so the consumer can wait for it.

``same_memory(a, b)`` compares the pointers: equal means the two objects are two views of
one buffer, and writing through one shows through the other.

``HostArray`` and ``CudaArray`` are the smallest producers there can be: a pointer plus a
shape, exposed through the protocol, so the dict itself is on screen in the lesson.
"""

from __future__ import annotations

import numpy as np

__all__ = ["data_ptr", "same_memory", "HostArray", "CudaArray", "to_numpy", "from_numpy",
           "to_cupy", "from_cupy", "stream_hazard", "copy_direction", "host_copies"]


def data_ptr(x) -> int:
    """The address of the first element of a numpy array, torch tensor, CuPy array, or any
    object exposing __cuda_array_interface__ / __array_interface__."""
    if hasattr(x, "data_ptr") and callable(x.data_ptr):  # torch
        return int(x.data_ptr())
    if hasattr(x, "__cuda_array_interface__"):
        return int(x.__cuda_array_interface__["data"][0])
    if hasattr(x, "__array_interface__"):
        return int(x.__array_interface__["data"][0])
    raise ValueError(f"cannot find the data pointer of {type(x).__name__}: expected a numpy "
                     "array, a torch tensor, or an object with __cuda_array_interface__.")


def _device_kind(x) -> str:
    if hasattr(x, "is_cuda"):
        return "cuda" if x.is_cuda else "cpu"
    return "cuda" if hasattr(x, "__cuda_array_interface__") else "cpu"


def same_memory(a, b) -> bool:
    """True when ``a`` and ``b`` start at the same address in the same memory (host/device)."""
    return _device_kind(a) == _device_kind(b) and data_ptr(a) == data_ptr(b)


class HostArray:
    """A bare host buffer exposed through numpy's __array_interface__ (protocol version 3).

    ``np.asarray(HostArray(...))`` wraps it without a copy (and ``torch.from_numpy`` of that
    array shares it too; torch itself does not read __array_interface__). ``owner``
    keeps the memory alive for as long as this object lives."""

    def __init__(self, ptr: int, shape, typestr: str = "|u1", owner=None):
        self.owner = owner
        self.__array_interface__ = {"shape": tuple(int(s) for s in shape), "typestr": typestr,
                                    "data": (int(ptr), False), "strides": None, "version": 3}

    @classmethod
    def over(cls, array: np.ndarray) -> HostArray:
        if not array.flags.c_contiguous:
            raise ValueError("HostArray.over needs a C-contiguous array; call np.ascontiguousarray first.")
        return cls(array.ctypes.data, array.shape, array.__array_interface__["typestr"], owner=array)


class CudaArray:
    """A bare device buffer exposed through __cuda_array_interface__ (version 3).

    ``stream`` is the CUDA stream (an int handle) on which the producer last wrote the
    buffer; a consumer that honours the protocol waits on it before reading. None means the
    producer has already synchronised (the protocol's "no stream" case)."""

    def __init__(self, ptr: int, shape, typestr: str = "|u1", owner=None, stream: int | None = None):
        self.owner = owner
        self.__cuda_array_interface__ = {"shape": tuple(int(s) for s in shape), "typestr": typestr,
                                         "data": (int(ptr), False), "strides": None, "version": 3,
                                         "stream": stream}

    @classmethod
    def over(cls, tensor, stream: int | None = None) -> CudaArray:
        """Expose a contiguous torch CUDA tensor's memory (the tensor stays its owner)."""
        if not getattr(tensor, "is_cuda", False):
            raise ValueError(f"CudaArray.over needs a CUDA tensor; found {getattr(tensor, 'device', type(tensor).__name__)}. "
                             "On the CPU use HostArray.over(tensor.numpy()).")
        if not tensor.is_contiguous():
            raise ValueError("CudaArray.over needs a contiguous tensor; call .contiguous() first.")
        typestr = np.dtype(str(tensor.dtype).replace("torch.", "")).str
        return cls(tensor.data_ptr(), tensor.shape, typestr, owner=tensor, stream=stream)


def to_numpy(tensor):
    """A CPU tensor as a numpy array over the same memory (raises for CUDA tensors: that
    would need a copy, and this module never copies)."""
    if tensor.is_cuda:
        raise ValueError("to_numpy: the tensor lives on the GPU; a numpy view of it cannot exist. "
                         "Copy explicitly with tensor.cpu().numpy() where you mean to.")
    return tensor.detach().numpy()


def from_numpy(array: np.ndarray):
    import torch

    return torch.from_numpy(array)


def to_cupy(tensor, via: str = "cai"):
    """A CUDA tensor as a CuPy array over the same memory, through __cuda_array_interface__
    (``via="cai"``) or DLPack (``via="dlpack"``)."""
    import cupy

    if via == "cai":
        return cupy.asarray(tensor)
    if via == "dlpack":
        return cupy.from_dlpack(tensor)
    raise ValueError(f"via must be 'cai' or 'dlpack'; found {via!r}.")


def from_cupy(array, via: str = "cai"):
    import torch

    if via == "cai":
        return torch.as_tensor(array, device="cuda")
    if via == "dlpack":
        return torch.from_dlpack(array)
    raise ValueError(f"via must be 'cai' or 'dlpack'; found {via!r}.")


def stream_hazard(n: int = 1 << 24, repeats: int = 20) -> dict:
    """The classic interop bug, on a GPU: a producer writes a buffer on stream A, a consumer
    reads it on stream B without waiting. Returns how often the unsynchronised read saw
    stale data, and that the fixed version (B waits for A's event) never does."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("stream_hazard needs a CUDA device; this machine has none.")
    producer, consumer = torch.cuda.Stream(), torch.cuda.Stream()
    stale = {"no sync": 0, "event wait": 0}
    for _ in range(repeats):
        for mode in stale:
            buf = torch.zeros(n, device="cuda")
            torch.cuda.synchronize()
            with torch.cuda.stream(producer):
                for _ in range(8):  # slow enough that the consumer can overtake it
                    buf.add_(1.0).mul_(1.0)
                done = torch.cuda.Event()
                done.record(producer)
            with torch.cuda.stream(consumer):
                if mode == "event wait":
                    consumer.wait_event(done)
                total = buf.sum()
            torch.cuda.synchronize()
            if float(total) != 8.0 * n:
                stale[mode] += 1
    return {"repeats": repeats, "stale_reads": stale}


def copy_direction(name: str) -> str | None:
    """"HtoD" or "DtoH" for a profiler event that is a copy across the host/device boundary,
    else None. CUPTI's memcpy activities are named "Memcpy HtoD (Pageable -> Device)",
    "Memcpy DtoH (Device -> Pinned)" and so on; device-to-device and peer copies ("Memcpy DtoD",
    "Memcpy PtoP") stay on the GPU, and runtime calls such as cudaMemcpyAsync are the CPU side
    of a copy that already has its own GPU event."""
    if not name.startswith("Memcpy"):
        return None
    for direction in ("HtoD", "DtoH"):
        if direction in name:
            return direction
    return None


def host_copies(fn, *args, **kwargs) -> list[dict]:
    """Run ``fn`` under torch.profiler and list every copy between host and device, both ways:
    ``{"name", "direction" ("HtoD"/"DtoH"), "us"}`` per GPU memcpy. An empty list proves the
    frame never crossed; NMS and boolean masks legitimately copy a few bytes back (counts,
    keep masks), and an upload inside ``fn`` shows as HtoD."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    if not torch.cuda.is_available():
        raise RuntimeError("host_copies needs a CUDA device; on the CPU there is no host/device boundary.")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn(*args, **kwargs)
        torch.cuda.synchronize()
    found = []
    for e in prof.events():
        direction = copy_direction(e.name)
        if direction is not None:
            us = e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
            found.append({"name": e.name, "direction": direction, "us": us})
    return found
