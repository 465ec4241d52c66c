"""Block copies inside the Numba kernels.

Numba compiles a slice assignment ``dst[a:b] = src[c:d]`` to an element-by-element loop over
generic strides. On the window gathers of the screened step (five runs of 160 float32 values
per window, 23 k windows) that loop took 6.2 ms on one core, and ``memcpy`` 1.5 ms.
:func:`copy_run` is that ``memcpy``: a run of contiguous elements between two C-contiguous
arrays of one dtype, emitted as LLVM's ``memcpy`` intrinsic. :func:`aligned_empty` makes the
arrays whose rows the vector kernels of :mod:`._vector` load start on a cache line
(:func:`aligned_copy`: such a copy of an array).
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def copy_run(typingctx, dst, dst_start, src, src_start, count):
    """``dst.flat[dst_start : dst_start + count] = src.flat[src_start : src_start + count]``.

    Both arrays C-contiguous with the same dtype, ``dst`` writable; like Numba's indexing, the
    range is not checked: the caller keeps both runs in bounds and apart (``memcpy``)."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)
            and dst.layout == "C" and src.layout == "C" and dst.dtype == src.dtype
            and dst.mutable and isinstance(dst_start, types.Integer)
            and isinstance(src_start, types.Integer) and isinstance(count, types.Integer)):
        return None
    signature = types.void(dst, types.intp, src, types.intp, types.intp)

    def codegen(context, builder, sig, args):
        target, target_start, source, source_start, n = args
        target_data = context.make_array(sig.args[0])(context, builder, target).data
        source_data = context.make_array(sig.args[2])(context, builder, source).data
        itemsize = context.get_abi_sizeof(context.get_data_type(sig.args[0].dtype))
        cgutils.raw_memcpy(builder, builder.gep(target_data, [target_start]),
                           builder.gep(source_data, [source_start]), n, itemsize)
        return context.get_dummy_value()

    return signature, codegen


#: Bytes of a cache line (and of an AVX-512 vector).
LINE_BYTES = 64


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An empty C-contiguous array whose data starts on a :data:`LINE_BYTES` boundary (NumPy's
    start on 16): vector loads at multiples of 64 bytes from its start then stay within cache
    lines. Measured on one core, 800-value float32 dots on an Intel Xeon core: 42-52 ns
    aligned, 60-78 ns not."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + LINE_BYTES, np.uint8)
    skip = -raw.ctypes.data % LINE_BYTES
    return raw[skip:skip + size].view(dtype).reshape(shape)


def aligned_copy(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``array`` in an :func:`aligned_empty` array."""
    out = aligned_empty(array.shape, array.dtype)
    out[...] = array
    return out
