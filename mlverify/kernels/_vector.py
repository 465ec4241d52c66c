r"""A dot product in vector registers, summed in a fixed order, for the Numba kernels.

LLVM vectorises a float reduction only when it may reorder the sum (``fastmath``), which the
kernels whose results are checked against theorems do not allow. A dot product written as a
Numba loop then runs one multiply-add at a time: 245-446 ns for 800 float32 values measured
on this machine, against 16 ns per dot inside a BLAS ``gemm``. :func:`dot_runs` emits the
vector code itself (LLVM IR vector types, as :mod:`._memory` emits ``memcpy``), in an order
fixed by the lengths alone, so its result does not depend on the alignment, the thread or the
machine's vector width: measured 43 ns for 800 float32 values held in L1/L2.

The order: :data:`ACCUMULATORS` vector accumulators of ``64 / itemsize`` lanes (one 512-bit
register). In each run, the full groups of ``ACCUMULATORS`` vectors go to the accumulators in
turn, the full vectors left go to the first one, the values left to a scalar accumulator; at
the end the accumulators are added pairwise, their lanes summed by halving (lane ``i`` plus lane
``i + L/2``), and the scalar added. Products and sums are separate roundings (``fmul``,
``fadd``: no fused multiply-add, whose availability depends on the machine). Any order of the
``K`` products carries the same error bound :math:`\gamma_K \sum_k |x_k w_k|`,
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


@intrinsic
def dot_runs(typingctx, x, x_start, x_stride, w, w_start, length, runs):
    r""":math:`\sum_{r < runs} \sum_{k < length} x[x_{start} + r\,x_{stride} + k]\,
    w[w_{start} + r\,length + k]` over the flat C-contiguous arrays ``x`` and ``w`` (one float
    dtype), in the fixed order of the module docstring: ``runs`` runs of ``x`` (a window's rows
    in a padded image, say) against one contiguous run of ``w``. Like Numba's indexing, the
    ranges are not checked."""
    if not (isinstance(x, types.Array) and isinstance(w, types.Array)
            and x.layout == "C" and w.layout == "C" and x.dtype == w.dtype
            and isinstance(x.dtype, types.Float)
            and all(isinstance(n, types.Integer)
                    for n in (x_start, x_stride, w_start, length, runs))):
        return None
    signature = x.dtype(x, types.intp, types.intp, w, types.intp, types.intp, types.intp)

    def codegen(context, builder, sig, args):
        xs, x0, stride, ws, w0, n, count = args
        scalar = context.get_data_type(sig.return_type)
        itemsize = context.get_abi_sizeof(scalar)
        lanes = VECTOR_BYTES // itemsize
        vector = ir.VectorType(scalar, lanes)
        pointer = vector.as_pointer()
        x_data = context.make_array(sig.args[0])(context, builder, xs).data
        w_data = context.make_array(sig.args[3])(context, builder, ws).data
        index = ir.IntType(64)
        zero = ir.Constant(vector, [0.0] * lanes)
        fused = cgutils.get_or_insert_function(  # x·w + a, one rounding where the machine fuses
            builder.module, ir.FunctionType(vector, [vector] * 3),
            f"llvm.fmuladd.v{lanes}f{itemsize * 8}")
        accumulators = [cgutils.alloca_once_value(builder, zero) for _ in range(ACCUMULATORS)]
        tail = cgutils.alloca_once_value(builder, ir.Constant(scalar, 0.0))
        group = ir.Constant(index, ACCUMULATORS * lanes)
        groups = builder.udiv(n, group)
        vectors = builder.udiv(builder.sub(n, builder.mul(groups, group)),
                               ir.Constant(index, lanes))
        covered = builder.add(builder.mul(groups, group),
                              builder.mul(vectors, ir.Constant(index, lanes)))

        def multiply_add(slot, x_row, w_row, offset):
            x_vector = builder.load(builder.bitcast(builder.gep(x_row, [offset]), pointer),
                                    align=itemsize)
            w_vector = builder.load(builder.bitcast(builder.gep(w_row, [offset]), pointer),
                                    align=itemsize)
            builder.store(builder.call(fused, [x_vector, w_vector, builder.load(slot)]), slot)

        with cgutils.for_range(builder, count) as run:
            x_row = builder.gep(x_data, [builder.add(x0, builder.mul(run.index, stride))])
            w_row = builder.gep(w_data, [builder.add(w0, builder.mul(run.index, n))])
            with cgutils.for_range(builder, groups) as g:
                first = builder.mul(g.index, group)
                for k, slot in enumerate(accumulators):
                    multiply_add(slot, x_row, w_row,
                                 builder.add(first, ir.Constant(index, k * lanes)))
            with cgutils.for_range(builder, vectors) as v:
                multiply_add(accumulators[0], x_row, w_row,
                             builder.add(builder.mul(groups, group),
                                         builder.mul(v.index, ir.Constant(index, lanes))))
            with cgutils.for_range(builder, builder.sub(n, covered)) as k:
                offset = builder.add(covered, k.index)
                product = builder.fmul(builder.load(builder.gep(x_row, [offset])),
                                       builder.load(builder.gep(w_row, [offset])))
                builder.store(builder.fadd(builder.load(tail), product), tail)
        sums = [builder.load(slot) for slot in accumulators]
        while len(sums) > 1:
            sums = [builder.fadd(sums[i], sums[i + 1]) for i in range(0, len(sums), 2)]
        return builder.fadd(_lane_sum(builder, sums[0], lanes), builder.load(tail))

    return signature, codegen
