r"""A dot product in vector registers, summed in a fixed order, for the Numba kernels.

LLVM vectorises a float reduction only when it may reorder the sum (``fastmath``), which the
kernels whose results are checked against theorems do not allow. A dot product written as a
Numba loop then runs one multiply-add at a time: 245-446 ns for 800 float32 values (measured on
an AMD EPYC core), against 16 ns per dot inside a BLAS ``gemm``. :func:`dot_runs` emits the
vector code itself (LLVM IR vector types, as :mod:`._memory` emits ``memcpy``), in an order
fixed by the lengths alone, so its result does not depend on the alignment or the thread: 40-49
ns for 800 float32 values held in L1/L2 on an Intel Xeon core at 2.8 GHz (87-100 ns when the
arrays do not start on 64 bytes: the loads then split cache lines), and :func:`dot_runs4`, four
atoms sharing the loads of ``x``, 29-33 ns per dot.

The order: :data:`ACCUMULATORS` vector accumulators of ``64 / itemsize`` lanes (one 512-bit
register). In each run, the full groups of ``ACCUMULATORS`` vectors go to the accumulators in
turn, the full vectors left go to the first one, the values left to a scalar accumulator; at
the end the accumulators are added pairwise, their lanes summed by halving (lane ``i`` plus lane
``i + L/2``), and the scalar added. The vector multiply-adds are ``llvm.fmuladd``: fused, one
rounding, where the machine has FMA (a product and a sum otherwise, so the last bits may differ
between such machines, never between runs or threads on one); the scalar tail rounds its
products and sums separately. Any order of the ``K`` products, fused or not, carries the same
error bound :math:`\gamma_K \sum_k |x_k w_k|`,
:math:`\gamma_K = Ku/(1 - Ku)` (Higham, *Accuracy and Stability of Numerical Algorithms*,
§3.1), which is the one the screening's drifts use.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: Vector accumulators: four hide the latency of the additions (43 ns per 800-value dot,
#: against 53 with one).
ACCUMULATORS = 4
#: Bytes of one vector (an AVX-512 register; LLVM splits it where the machine's are shorter).
VECTOR_BYTES = 64


def _lane_sum(builder, vector, lanes):
    """The lanes of ``vector`` summed by halving: ``v[:L/2] + v[L/2:]`` until one is left."""
    while lanes > 1:
        lanes //= 2
        low = builder.shuffle_vector(vector, vector, ir.Constant(
            ir.VectorType(ir.IntType(32), lanes), list(range(lanes))))
        high = builder.shuffle_vector(vector, vector, ir.Constant(
            ir.VectorType(ir.IntType(32), lanes), list(range(lanes, 2 * lanes))))
        vector = builder.fadd(low, high)
    return builder.extract_element(vector, ir.Constant(ir.IntType(32), 0))


def _typed(x, w, integers):
    """Whether the arguments of the dot intrinsics type: two C-contiguous arrays of one float
    dtype and integer offsets and counts."""
    return (isinstance(x, types.Array) and isinstance(w, types.Array)
            and x.layout == "C" and w.layout == "C" and x.dtype == w.dtype
            and isinstance(x.dtype, types.Float)
            and all(isinstance(n, types.Integer) for n in integers))


def _dots(context, builder, x_array, w_array, args, atoms):
    """The code of ``atoms`` dot products of one ``x`` (runs at a stride) with ``atoms`` runs of
    ``w`` (``args = (x, x_start, x_stride, w, w_start..., length, runs)``), sharing the loads
    of ``x``; each in the order of the module docstring, so that its result is the same bits
    whatever the atoms computed with it. Returns the ``atoms`` sums."""
    xs, x0, stride, ws = args[:4]
    w_starts = args[4:4 + atoms]
    n, count = args[4 + atoms:]
    scalar = context.get_data_type(x_array.dtype)
    itemsize = context.get_abi_sizeof(scalar)
    lanes = VECTOR_BYTES // itemsize
    vector = ir.VectorType(scalar, lanes)
    pointer = vector.as_pointer()
    x_data = context.make_array(x_array)(context, builder, xs).data
    w_data = context.make_array(w_array)(context, builder, ws).data
    index = ir.IntType(64)
    zero = ir.Constant(vector, [0.0] * lanes)
    fused = cgutils.get_or_insert_function(  # x·w + a, one rounding where the machine fuses
        builder.module, ir.FunctionType(vector, [vector] * 3),
        f"llvm.fmuladd.v{lanes}f{itemsize * 8}")
    accumulators = [[cgutils.alloca_once_value(builder, zero) for _ in range(ACCUMULATORS)]
                    for _ in range(atoms)]
    tails = [cgutils.alloca_once_value(builder, ir.Constant(scalar, 0.0)) for _ in range(atoms)]
    group = ir.Constant(index, ACCUMULATORS * lanes)
    groups = builder.udiv(n, group)
    vectors = builder.udiv(builder.sub(n, builder.mul(groups, group)), ir.Constant(index, lanes))
    covered = builder.add(builder.mul(groups, group),
                          builder.mul(vectors, ir.Constant(index, lanes)))

    def load(row, offset):
        return builder.load(builder.bitcast(builder.gep(row, [offset]), pointer), align=itemsize)

    def multiply_add(k, x_row, w_rows, offset):
        x_vector = load(x_row, offset)
        for slots, w_row in zip(accumulators, w_rows, strict=True):
            slot = slots[k]
            builder.store(builder.call(fused, [x_vector, load(w_row, offset),
                                               builder.load(slot)]), slot)

    with cgutils.for_range(builder, count) as run:
        x_row = builder.gep(x_data, [builder.add(x0, builder.mul(run.index, stride))])
        w_rows = [builder.gep(w_data, [builder.add(w0, builder.mul(run.index, n))])
                  for w0 in w_starts]
        with cgutils.for_range(builder, groups) as g:
            first = builder.mul(g.index, group)
            for k in range(ACCUMULATORS):
                multiply_add(k, x_row, w_rows, builder.add(first, ir.Constant(index, k * lanes)))
        with cgutils.for_range(builder, vectors) as v:
            multiply_add(0, x_row, w_rows, builder.add(builder.mul(groups, group),
                                                       builder.mul(v.index,
                                                                   ir.Constant(index, lanes))))
        with cgutils.for_range(builder, builder.sub(n, covered)) as k:
            offset = builder.add(covered, k.index)
            x_value = builder.load(builder.gep(x_row, [offset]))
            for tail, w_row in zip(tails, w_rows, strict=True):
                product = builder.fmul(x_value, builder.load(builder.gep(w_row, [offset])))
                builder.store(builder.fadd(builder.load(tail), product), tail)
    results = []
    for slots, tail in zip(accumulators, tails, strict=True):
        sums = [builder.load(slot) for slot in slots]
        while len(sums) > 1:
            sums = [builder.fadd(sums[i], sums[i + 1]) for i in range(0, len(sums), 2)]
        results.append(builder.fadd(_lane_sum(builder, sums[0], lanes), builder.load(tail)))
    return results


@intrinsic
def dot_runs(typingctx, x, x_start, x_stride, w, w_start, length, runs):
    r""":math:`\sum_{r < runs} \sum_{k < length} x[x_{start} + r\,x_{stride} + k]\,
    w[w_{start} + r\,length + k]` over the flat C-contiguous arrays ``x`` and ``w`` (one float
    dtype), in the fixed order of the module docstring: ``runs`` runs of ``x`` (a window's rows
    in a padded image, say) against one contiguous run of ``w``. Like Numba's indexing, the
    ranges are not checked."""
    if not _typed(x, w, (x_start, x_stride, w_start, length, runs)):
        return None
    signature = x.dtype(x, types.intp, types.intp, w, types.intp, types.intp, types.intp)

    def codegen(context, builder, sig, args):
        return _dots(context, builder, sig.args[0], sig.args[3], args, 1)[0]

    return signature, codegen


@intrinsic
def dot_runs4(typingctx, x, x_start, x_stride, w, w0, w1, w2, w3, length, runs):
    """Four :func:`dot_runs` of one ``x`` with the runs of ``w`` at ``w0 … w3``, as a tuple:
    each the same bits as :func:`dot_runs` gives it, with a quarter of the loads of ``x``
    (measured on one core of an Intel Xeon at 2.8 GHz, windows of five runs of 160 values
    against 16 of 64 atoms: 29-33 ns per float32 dot against 40-49 alone, 72-85 ns per float64
    dot against 85-99)."""
    if not _typed(x, w, (x_start, x_stride, w0, w1, w2, w3, length, runs)):
        return None
    signature = types.UniTuple(x.dtype, 4)(x, types.intp, types.intp, w, *[types.intp] * 4,
                                           types.intp, types.intp)

    def codegen(context, builder, sig, args):
        sums = _dots(context, builder, sig.args[0], sig.args[3], args, 4)
        return context.make_tuple(builder, sig.return_type, sums)

    return signature, codegen
