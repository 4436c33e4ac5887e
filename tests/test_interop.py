"""helpers.interop: views share memory, copies do not, and the bare protocol objects work."""

import numpy as np
import pytest
import torch

from helpers import interop


def test_numpy_torch_views_share_memory_and_copies_do_not():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    t = interop.from_numpy(a)
    assert interop.same_memory(a, t)
    t[0, 0] = 99
    assert a[0, 0] == 99  # one buffer, two views
    assert not interop.same_memory(a, t.clone())
    assert interop.same_memory(interop.to_numpy(t), a)


def test_host_array_protocol_wraps_without_copying():
    a = np.zeros((4, 5, 3), np.uint8)
    wrapped = interop.HostArray.over(a)
    assert wrapped.__array_interface__["shape"] == (4, 5, 3)
    view = np.asarray(wrapped)
    tensor = torch.as_tensor(view)
    assert interop.same_memory(view, a) and interop.same_memory(tensor, a)
    tensor[1, 2, 0] = 7
    assert a[1, 2, 0] == 7


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="data pointer"):
        interop.data_ptr([1, 2, 3])
    with pytest.raises(ValueError, match="CUDA tensor"):
        interop.CudaArray.over(torch.zeros(3))
    with pytest.raises(ValueError, match="C-contiguous"):
        interop.HostArray.over(np.zeros((4, 4))[:, ::2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_array_interface_round_trip():
    t = torch.arange(10, device="cuda", dtype=torch.float32)
    wrapped = interop.CudaArray.over(t)
    back = torch.as_tensor(wrapped, device="cuda")
    assert interop.same_memory(back, t)
    back[0] = 5
    assert float(t[0]) == 5


def test_copy_direction_reads_cupti_memcpy_names_both_ways():
    assert interop.copy_direction("Memcpy HtoD (Pageable -> Device)") == "HtoD"
    assert interop.copy_direction("Memcpy HtoD (Pinned -> Device)") == "HtoD"
    assert interop.copy_direction("Memcpy DtoH (Device -> Pageable)") == "DtoH"
    assert interop.copy_direction("Memcpy DtoH (Device -> Pinned)") == "DtoH"
    # Copies that stay on the GPU, and the CPU side of a copy, are not host copies.
    for name in ("Memcpy DtoD (Device -> Device)", "Memcpy PtoP (Device -> Device)",
                 "cudaMemcpyAsync", "aten::copy_", "aten::_to_copy"):
        assert interop.copy_direction(name) is None, name


def test_host_copies_needs_a_gpu_and_says_so():
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(RuntimeError, match="CUDA device"):
        interop.host_copies(lambda: None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_host_copies_counts_uploads_and_downloads():
    frame = torch.zeros(480, 640, 3, dtype=torch.uint8)
    gpu = frame.cuda()
    assert interop.host_copies(lambda: gpu.float().mul_(2)) == []  # stays on the device
    found = interop.host_copies(lambda: frame.cuda().float().cpu())
    assert sorted(c["direction"] for c in found) == ["DtoH", "HtoD"]
