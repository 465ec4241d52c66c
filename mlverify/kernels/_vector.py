r"""Vector-register kernels written as LLVM IR, each summing in a fixed order, for the Numba
kernels: dot products (:func:`dot_runs`, :func:`dot_block`, below), and the register blocks of
the dense and sparse correlations (:func:`correlate_channels`, :func:`correlate_channel_rows`,
:func:`window_sums`, and the scattered synthesis's :func:`add_patches`, further down: LLVM
vectorises their plain loops only to 256 bits on an Intel Xeon, and without ``fastmath``
multiplies and adds separately; the blocks keep the sums in 512-bit registers while the
operands stream past, one fused multiply-add per vector).

LLVM vectorises a float reduction only when it may reorder the sum (``fastmath``), which the
kernels whose results are checked against theorems do not allow. A dot product written as a
Numba loop then runs one multiply-add at a time: 245-446 ns for 800 float32 values (measured on
an AMD EPYC core), against 16 ns per dot inside a BLAS ``gemm``. :func:`dot_runs` emits the
vector code itself (LLVM IR vector types, as :mod:`._memory` emits ``memcpy``), in an order
fixed by the lengths alone, so its result does not depend on the alignment or the thread: 40-49
ns for 800 float32 values held in L1/L2 on an Intel Xeon core at 2.8 GHz (87-100 ns when the
arrays do not start on 64 bytes: the loads then split cache lines). :func:`dot_block` computes
a block of windows by atoms sharing the loads of both (four atoms of one window: 29-33 ns per
dot).

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

#: Vector accumulators per dot. A lone dot is bound by the latency of its additions (43 ns per
#: 800 float32 values with four, 53 with one); a block of two windows by four atoms
#: (:func:`dot_block`) has eight dots to interleave, and with two accumulators each holds 16
#: of the 32 registers (with four, 32: they spill). Measured on the screened step of the CNN
#: benchmark's layer 2 in such blocks: one and two accumulators alike, within the noise.
ACCUMULATORS = 2
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


def _fused(builder, kind, itemsize):
    """``llvm.fmuladd`` for ``kind`` (a float type of ``itemsize`` bytes, or a vector of them):
    ``a·b + c`` with one rounding where the machine fuses."""
    lanes = f"v{kind.count}" if isinstance(kind, ir.VectorType) else ""
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(kind, [kind] * 3),
                                          f"llvm.fmuladd.{lanes}f{itemsize * 8}")


def _splat(builder, vector, value):
    """``value`` in every lane of a ``vector``."""
    single = builder.insert_element(ir.Constant(vector, ir.Undefined), value,
                                    ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(single, ir.Constant(vector, ir.Undefined), ir.Constant(
        ir.VectorType(ir.IntType(32), vector.count), [0] * vector.count))


def _typed(x, w, integers):
    """Whether the arguments of the dot intrinsics type: two C-contiguous arrays of one float
    dtype and integer offsets and counts."""
    return (isinstance(x, types.Array) and isinstance(w, types.Array)
            and x.layout == "C" and w.layout == "C" and x.dtype == w.dtype
            and isinstance(x.dtype, types.Float)
            and all(isinstance(n, types.Integer) for n in integers))


def _dots(context, builder, x_array, w_array, x_args, w_args, n, count):
    """The code of the dot products of every window of ``x`` (runs at a stride; ``x_args =
    (x, starts, stride)``) with every run of ``w`` (``w_args = (w, starts)``), sharing the
    loads of both: each vector of a window serves all the atoms, each vector of an atom all
    the windows. Each sum in the order of the module docstring, so that its result is the same
    bits whatever the windows and atoms computed with it. Returns the sums window by window,
    atom by atom within a window."""
    xs, x_starts, stride = x_args
    ws, w_starts = w_args
    scalar = context.get_data_type(x_array.dtype)
    itemsize = context.get_abi_sizeof(scalar)
    lanes = VECTOR_BYTES // itemsize
    vector = ir.VectorType(scalar, lanes)
    pointer = vector.as_pointer()
    x_data = context.make_array(x_array)(context, builder, xs).data
    w_data = context.make_array(w_array)(context, builder, ws).data
    index = ir.IntType(64)
    zero = ir.Constant(vector, [0.0] * lanes)
    fused = _fused(builder, vector, itemsize)
    pairs = [(a, b) for a in range(len(x_starts)) for b in range(len(w_starts))]
    accumulators = {pair: [cgutils.alloca_once_value(builder, zero) for _ in range(ACCUMULATORS)]
                    for pair in pairs}
    tails = {pair: cgutils.alloca_once_value(builder, ir.Constant(scalar, 0.0)) for pair in pairs}
    group = ir.Constant(index, ACCUMULATORS * lanes)
    groups = builder.udiv(n, group)
    vectors = builder.udiv(builder.sub(n, builder.mul(groups, group)), ir.Constant(index, lanes))
    covered = builder.add(builder.mul(groups, group),
                          builder.mul(vectors, ir.Constant(index, lanes)))

    def load(row, offset):
        return builder.load(builder.bitcast(builder.gep(row, [offset]), pointer), align=itemsize)

    def multiply_add(k, x_rows, w_rows, offset):
        x_vectors = [load(row, offset) for row in x_rows]
        w_vectors = [load(row, offset) for row in w_rows]
        for a, b in pairs:
            slot = accumulators[a, b][k]
            builder.store(builder.call(fused, [x_vectors[a], w_vectors[b], builder.load(slot)]),
                          slot)

    with cgutils.for_range(builder, count) as run:
        x_rows = [builder.gep(x_data, [builder.add(x0, builder.mul(run.index, stride))])
                  for x0 in x_starts]
        w_rows = [builder.gep(w_data, [builder.add(w0, builder.mul(run.index, n))])
                  for w0 in w_starts]
        with cgutils.for_range(builder, groups) as g:
            first = builder.mul(g.index, group)
            for k in range(ACCUMULATORS):
                multiply_add(k, x_rows, w_rows, builder.add(first, ir.Constant(index, k * lanes)))
        with cgutils.for_range(builder, vectors) as v:
            multiply_add(0, x_rows, w_rows, builder.add(builder.mul(groups, group),
                                                        builder.mul(v.index,
                                                                    ir.Constant(index, lanes))))
        with cgutils.for_range(builder, builder.sub(n, covered)) as k:
            offset = builder.add(covered, k.index)
            x_values = [builder.load(builder.gep(row, [offset])) for row in x_rows]
            w_values = [builder.load(builder.gep(row, [offset])) for row in w_rows]
            for a, b in pairs:
                product = builder.fmul(x_values[a], w_values[b])
                builder.store(builder.fadd(builder.load(tails[a, b]), product), tails[a, b])
    results = []
    for pair in pairs:
        sums = [builder.load(slot) for slot in accumulators[pair]]
        while len(sums) > 1:
            sums = [builder.fadd(sums[i], sums[i + 1]) for i in range(0, len(sums), 2)]
        results.append(builder.fadd(_lane_sum(builder, sums[0], lanes),
                                    builder.load(tails[pair])))
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
        xs, x0, stride, ws, w0, length, count = args
        return _dots(context, builder, sig.args[0], sig.args[3], (xs, [x0], stride), (ws, [w0]),
                     length, count)[0]

    return signature, codegen


@intrinsic
def dot_block(typingctx, x, x_starts, x_stride, w, w_starts, length, runs):
    """The :func:`dot_runs` of every window of ``x`` starting at ``x_starts`` with every run of
    ``w`` starting at ``w_starts`` (two tuples of integers, of any lengths), as one tuple:
    window by window, atom by atom within a window. Each is the same bits as :func:`dot_runs`
    gives it; a block of ``P`` windows by ``A`` atoms loads ``P + A`` vectors per ``P·A``
    multiply-adds. Two windows by four atoms (the screened step's blocks), against four atoms
    of one window, halve the loads of the atoms, which the kernel reads from L2 (measured on
    the CNN benchmark's layer 2, one core of an Intel Xeon at 2.8 GHz: its dots 37-39 against
    47-50 ms per call, 20 % more of them)."""
    if not (isinstance(x_starts, types.UniTuple) and isinstance(w_starts, types.UniTuple)
            and _typed(x, w, (x_stride, length, runs, x_starts.dtype, w_starts.dtype))):
        return None
    count = x_starts.count * w_starts.count
    signature = types.UniTuple(x.dtype, count)(x, types.UniTuple(types.intp, x_starts.count),
                                               types.intp, w,
                                               types.UniTuple(types.intp, w_starts.count),
                                               types.intp, types.intp)

    def codegen(context, builder, sig, args):
        xs, x0, stride, ws, w0, length, runs = args
        x_list = cgutils.unpack_tuple(builder, x0)
        w_list = cgutils.unpack_tuple(builder, w0)
        sums = _dots(context, builder, sig.args[0], sig.args[3], (xs, x_list, stride),
                     (ws, w_list), length, runs)
        return context.make_tuple(builder, sig.return_type, sums)

    return signature, codegen


#: Output rows of one register block of :func:`correlate_channels` (each source vector loaded
#: serves this many channels) and :func:`correlate_channel_rows` (each tap this many rows).
GROUP = 4
#: Vectors along ``x`` of one register block of those kernels (with :data:`GROUP`, 16
#: accumulators and up to 4 source vectors of the 32 AVX-512 registers).
ROW_VECTORS = 4


def _correlate(arguments, zero_at, shared):
    """The ``(signature, codegen)`` of :func:`correlate_channels` (``shared``) or
    :func:`correlate_channel_rows` for their ``arguments`` (the arrays ``dst``, ``src`` and
    ``taps`` in this order, the rest integers), or ``None`` when these do not type. The code is
    :func:`_row_blocks` with the step the kernel does not take, zero, inserted at ``zero_at``."""
    arrays = [a for a in arguments if isinstance(a, types.Array)]
    integers = [a for a in arguments if not isinstance(a, types.Array)]
    if len(arrays) != 3:
        return None
    dst, src, taps = arrays
    if not (_typed(dst, src, integers) and taps.layout == "C" and taps.dtype == dst.dtype
            and dst.mutable):
        return None
    signature = types.void(*[a if isinstance(a, types.Array) else types.intp for a in arguments])

    def codegen(context, builder, sig, args):
        zero = context.get_constant(types.intp, 0)
        _row_blocks(context, builder, sig.args[:zero_at] + (types.intp,) + sig.args[zero_at:],
                    args[:zero_at] + (zero,) + args[zero_at:], shared)
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def correlate_channels(typingctx, dst, dst_start, dst_step, rows, width, src, src_start,
                       src_channel, src_row, taps, taps_start, taps_step, n_in, n1, n2):
    r"""Direct correlation sums of ``rows`` output channels of one output row:

    .. math::

        dst[d_0 + g\,d_g + x] = \sum_{i < n_{in}} \sum_{t_y < n_1} \sum_{u < n_2}
            taps[t_0 + g\,t_g + (i\,n_1 + t_y)\,n_2 + u]\;
            src[s_0 + i\,s_c + t_y\,s_r + x + u]

    for ``g < rows`` and ``x < width``, over flat C-contiguous arrays of one float
    dtype (the steps may be negative). Each sum is one chain of ``llvm.fmuladd`` from zero in
    the order ``(i, t_y, u)``, whatever block, vector or scalar tail computes it (and the same
    as :func:`correlate_channel_rows` gives it), so the result depends on neither the alignment
    nor the width.

    A block holds :data:`GROUP` channels × :data:`ROW_VECTORS` vectors of ``x`` in registers
    (the channels left, one at a time); each tap (broadcast) serves the :data:`ROW_VECTORS`
    vectors and each source vector loaded the :data:`GROUP` channels: 16 multiply-adds per 8
    loads. (LLVM's own vectorisation of the same loop, without ``fastmath``, multiplies and
    adds separately and stores the sums at every source row.) Like Numba's indexing, the
    ranges are not checked.
    """
    return _correlate((dst, dst_start, dst_step, rows, width, src, src_start, src_channel,
                       src_row, taps, taps_start, taps_step, n_in, n1, n2), 7, shared=True)


@intrinsic
def correlate_channel_rows(typingctx, dst, dst_start, dst_step, rows, width, src, src_start,
                           src_step, src_channel, src_row, taps, taps_start, n_in, n1, n2):
    r""":func:`correlate_channels` for ``rows`` output rows of *one* channel, which share its
    taps:

    .. math::

        dst[d_0 + g\,d_g + x] = \sum_{i < n_{in}} \sum_{t_y < n_1} \sum_{u < n_2}
            taps[t_0 + (i\,n_1 + t_y)\,n_2 + u]\;
            src[s_0 + g\,s_g + i\,s_c + t_y\,s_r + x + u],

    each sum the same chain as there. A block of :data:`GROUP` rows loads a source vector per
    row and tap (16 multiply-adds per 17 loads, the tap's broadcast included): for outputs with
    fewer channels than :data:`GROUP`, where one row at a time would load 5 for 4.
    """
    return _correlate((dst, dst_start, dst_step, rows, width, src, src_start, src_step,
                       src_channel, src_row, taps, taps_start, n_in, n1, n2), 12, shared=False)


def _row_blocks(context, builder, arg_types, args, shared):
    """The code of :func:`correlate_channels` (``shared``: one source row for all) and
    :func:`correlate_channel_rows`, from the arguments ``(dst, d_0, d_g, rows, width, src,
    s_0, s_g, s_c, s_r, taps, t_0, t_g, n_in, n1, n2)``: the rows in groups of :data:`GROUP`,
    then one by one; along each, blocks of :data:`ROW_VECTORS` vectors, then single vectors,
    then single values."""
    (out0, out_step, count_rows, width, src0, src_step, src_channel, src_row, taps0, taps_step,
     n_in, n1, n2) = args[1:5] + args[6:10] + args[11:]
    scalar = context.get_data_type(arg_types[0].dtype)
    itemsize = context.get_abi_sizeof(scalar)
    lanes = VECTOR_BYTES // itemsize
    vector = ir.VectorType(scalar, lanes)
    index = ir.IntType(64)
    out_data = context.make_array(arg_types[0])(context, builder, args[0]).data
    src_data = context.make_array(arg_types[5])(context, builder, args[5]).data
    taps_data = context.make_array(arg_types[10])(context, builder, args[10]).data
    fused = {kind: _fused(builder, kind, itemsize) for kind in (vector, scalar)}
    row = cgutils.alloca_once_value(builder, ir.Constant(index, 0))  # first row of the group
    column = cgutils.alloca_once_value(builder, ir.Constant(index, 0))

    def constant(value):
        return ir.Constant(index, value)

    def block(height, count, kind):
        """``height`` rows from ``row`` × ``count`` values of ``kind`` from ``column``."""
        step = lanes if kind is vector else 1
        g0, x = builder.load(row), builder.load(column)
        rows = [builder.add(g0, constant(g)) for g in range(height)]
        sums = [[cgutils.alloca_once(builder, kind) for _ in range(count)] for _ in range(height)]
        for slot in (slot for line in sums for slot in line):
            builder.store(ir.Constant(kind, None), slot)  # zero
        sources = [builder.add(builder.add(src0, x), builder.mul(g, src_step)) for g in rows]
        weights = [builder.add(taps0, builder.mul(g, taps_step)) for g in rows]
        with cgutils.for_range(builder, n_in) as i, cgutils.for_range(builder, n1) as ty:
            offset = builder.add(builder.mul(i.index, src_channel),
                                 builder.mul(ty.index, src_row))
            tap_row = builder.mul(builder.add(builder.mul(i.index, n1), ty.index), n2)
            with cgutils.for_range(builder, n2) as u:
                shift = builder.add(offset, u.index)
                tap = builder.add(tap_row, u.index)
                loaded = {}  # the source vectors, per row (one for all when shared)
                for g, line in enumerate(sums):
                    weight = builder.load(builder.gep(taps_data, [builder.add(weights[g], tap)]))
                    if kind is vector:
                        weight = _splat(builder, vector, weight)
                    for k, slot in enumerate(line):
                        key = (0 if shared else g, k)
                        if key not in loaded:
                            start = builder.gep(src_data, [builder.add(
                                builder.add(sources[g], shift), constant(k * step))])
                            loaded[key] = builder.load(builder.bitcast(
                                start, kind.as_pointer()), align=itemsize)
                        builder.store(builder.call(fused[kind], [weight, loaded[key],
                                                                 builder.load(slot)]), slot)
        for g, line in enumerate(sums):
            target = builder.add(out0, builder.add(builder.mul(rows[g], out_step), x))
            for k, slot in enumerate(line):
                at = builder.gep(out_data, [builder.add(target, constant(k * step))])
                builder.store(builder.load(slot), builder.bitcast(at, kind.as_pointer()),
                              align=itemsize)
        builder.store(builder.add(x, constant(count * step)), column)

    def line_of_blocks(height):
        """The blocks of ``height`` rows from ``row`` along the whole width."""
        builder.store(constant(0), column)
        with cgutils.for_range(builder, builder.udiv(width, constant(ROW_VECTORS * lanes))):
            block(height, ROW_VECTORS, vector)
        left = builder.sub(width, builder.load(column))
        with cgutils.for_range(builder, builder.udiv(left, constant(lanes))):
            block(height, 1, vector)
        with cgutils.for_range(builder, builder.sub(width, builder.load(column))):
            block(height, 1, scalar)
        builder.store(builder.add(builder.load(row), constant(height)), row)

    with cgutils.for_range(builder, builder.udiv(count_rows, constant(GROUP))):
        line_of_blocks(GROUP)
    with cgutils.for_range(builder, builder.urem(count_rows, constant(GROUP))):
        line_of_blocks(1)


#: Register blocks of :func:`window_sums`, in vectors, largest first.
WINDOW_BLOCKS = (8, 4, 2, 1)


@intrinsic
def window_sums(typingctx, dst, dst_start, width, taps, channels, channel_stride, values,
                offsets, pixels, shifts, count):
    r"""The sums of one output pixel of a sparse correlation, all its channels at once:

    .. math::

        dst[d_0 + q] = \sum_{s < count}\;
            \sum_{offsets[p_s] \le k < offsets[p_s + 1]}
            values[k]\; taps[channels[k]\,c + shifts[s] + q],
            \qquad p_s = pixels[s],\ q < width,

    with ``c = channel_stride``: the window's pixels ``p_s`` (compressed non-zeros, as
    :func:`mlverify.kernels.cpu_sparse.pixel_nonzeros` gives them) each with the offset of its
    taps. ``width`` is a multiple of the vector's lanes (``64 / itemsize``); the arrays are
    C-contiguous, ``dst``, ``taps`` and ``values`` of one float dtype. The sums are held in
    registers, in blocks of :data:`WINDOW_BLOCKS` vectors, while every non-zero of the window
    adds its tap vector (one load, one fused multiply-add per vector, the value broadcast):
    each sum is one chain of ``llvm.fmuladd`` from zero in the order of the segments and the
    non-zeros, whatever block computes it. Like Numba's indexing, the ranges are not checked.
    """
    if not (_typed(dst, taps, (dst_start, width, channel_stride, count)) and dst.mutable
            and isinstance(values, types.Array) and values.dtype == dst.dtype
            and values.layout == "C"
            and all(isinstance(a, types.Array) and isinstance(a.dtype, types.Integer)
                    and a.layout == "C" for a in (channels, offsets, pixels, shifts))):
        return None
    signature = types.void(dst, types.intp, types.intp, taps, channels, types.intp, values,
                           offsets, pixels, shifts, types.intp)

    def codegen(context, builder, sig, args):
        _window_blocks(context, builder, sig.args, args)
        return context.get_dummy_value()

    return signature, codegen


def _window_blocks(context, builder, arg_types, args):
    """The code of :func:`window_sums`."""
    out0, width, stride, count = args[1], args[2], args[5], args[10]
    scalar = context.get_data_type(arg_types[0].dtype)
    itemsize = context.get_abi_sizeof(scalar)
    lanes = VECTOR_BYTES // itemsize
    vector = ir.VectorType(scalar, lanes)
    index = ir.IntType(64)
    data = [context.make_array(kind)(context, builder, value).data
            for kind, value in zip(arg_types, args, strict=True) if isinstance(kind, types.Array)]
    out_data, taps_data, channels_data, values_data, offsets_data, pixels_data, shifts_data = data
    fused = _fused(builder, vector, itemsize)
    column = cgutils.alloca_once_value(builder, ir.Constant(index, 0))

    def integer(array, position):
        return builder.sext(builder.load(builder.gep(array, [position])), index)

    def block(count_vectors):
        q = builder.load(column)
        sums = [cgutils.alloca_once(builder, vector) for _ in range(count_vectors)]
        for slot in sums:
            builder.store(ir.Constant(vector, None), slot)  # zero
        with cgutils.for_range(builder, count) as s:
            pixel = integer(pixels_data, s.index)
            shift = builder.add(integer(shifts_data, s.index), q)
            first = integer(offsets_data, pixel)
            last = integer(offsets_data, builder.add(pixel, ir.Constant(index, 1)))
            with cgutils.for_range(builder, builder.sub(last, first)) as k:
                at = builder.add(first, k.index)
                value = _splat(builder, vector, builder.load(builder.gep(values_data, [at])))
                row = builder.gep(taps_data, [builder.add(
                    builder.mul(integer(channels_data, at), stride), shift)])
                for v, slot in enumerate(sums):
                    tap = builder.load(builder.bitcast(builder.gep(row, [
                        ir.Constant(index, v * lanes)]), vector.as_pointer()), align=itemsize)
                    builder.store(builder.call(fused, [value, tap, builder.load(slot)]), slot)
        target = builder.gep(out_data, [builder.add(out0, q)])
        for v, slot in enumerate(sums):
            builder.store(builder.load(slot), builder.bitcast(builder.gep(target, [
                ir.Constant(index, v * lanes)]), vector.as_pointer()), align=itemsize)
        builder.store(builder.add(q, ir.Constant(index, count_vectors * lanes)), column)

    largest = ir.Constant(index, WINDOW_BLOCKS[0] * lanes)
    with cgutils.for_range(builder, builder.udiv(width, largest)):
        block(WINDOW_BLOCKS[0])
    for vectors in WINDOW_BLOCKS[1:]:  # each at most once: what is left is below twice its size
        left = builder.sub(width, builder.load(column))
        with builder.if_then(builder.icmp_unsigned(">=", left,
                                                   ir.Constant(index, vectors * lanes))):
            block(vectors)


#: Vectors of one register block of :func:`add_patches`: each non-zero's value, broadcast once,
#: serves this many multiply-adds.
PATCH_VECTORS = 8


@intrinsic
def add_patches(typingctx, dst, dst_start, dst_stride, rows, run, taps, atom_size, channels,
                values, first, last):
    r"""Add the atoms of some non-zeros, scaled, into ``rows`` runs of ``dst``:

    .. math::

        dst[d_0 + r\,d_s + q] \mathrel{+}= \sum_{first \le k < last}
            values[k]\; taps[channels[k]\,a + r\,run + q], \qquad r < rows,\ q < run,

    with ``a = atom_size``: the patches of one pixel's non-zeros (their atoms contiguous in
    ``taps``, ``rows`` runs of ``run`` values each) scattered into a buffer whose rows are
    ``dst_stride`` apart. Each entry of ``dst`` is one chain of ``llvm.fmuladd`` from its old
    value, the non-zeros in order, whatever block computes it: blocks of
    :data:`PATCH_VECTORS` vectors held in registers while the non-zeros add their tap
    vectors, then one block of the vectors left, the last masked to the values left
    (``llvm.masked.load`` / ``store``: a run of 12 values is one vector, not 12 values). The
    arrays are C-contiguous, ``dst``, ``taps`` and ``values`` of one float dtype; like Numba's
    indexing, the ranges are not checked."""
    integers = (dst_start, dst_stride, rows, run, atom_size, first, last)
    if not (_typed(dst, taps, integers) and dst.mutable and isinstance(values, types.Array)
            and values.dtype == dst.dtype and values.layout == "C"
            and isinstance(channels, types.Array) and isinstance(channels.dtype, types.Integer)
            and channels.layout == "C"):
        return None
    signature = types.void(dst, *[types.intp] * 4, taps, types.intp, channels, values,
                           types.intp, types.intp)

    def codegen(context, builder, sig, args):
        _patch_blocks(context, builder, sig.args, args)
        return context.get_dummy_value()

    return signature, codegen


def _patch_blocks(context, builder, arg_types, args):
    """The code of :func:`add_patches`."""
    dst0, dst_stride, rows, run, atom_size, first, last = args[1:5] + (args[6],) + args[9:]
    scalar = context.get_data_type(arg_types[0].dtype)
    itemsize = context.get_abi_sizeof(scalar)
    lanes = VECTOR_BYTES // itemsize
    vector = ir.VectorType(scalar, lanes)
    pointer = vector.as_pointer()
    index = ir.IntType(64)
    dst_data, taps_data, channels_data, values_data = (
        context.make_array(arg_types[i])(context, builder, args[i]).data for i in (0, 5, 7, 8))
    fused = _fused(builder, vector, itemsize)
    flags = ir.VectorType(ir.IntType(1), lanes)
    alignment = ir.Constant(ir.IntType(32), itemsize)
    # LLVM's masked loads and stores of such vectors (opaque pointers, as LLVM has since 17)
    name = f"v{lanes}f{itemsize * 8}.p0"
    masked_load = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
        vector, [pointer, ir.IntType(32), flags, vector]), f"llvm.masked.load.{name}")
    masked_store = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
        ir.VoidType(), [vector, pointer, ir.IntType(32), flags]), f"llvm.masked.store.{name}")
    positions = ir.VectorType(ir.IntType(32), lanes)  # of the lanes in a block's row
    column = cgutils.alloca_once_value(builder, ir.Constant(index, 0))

    def block(r, count, rest=None):
        """``count`` vectors at ``column`` of row ``r``; with ``rest``, masked to the ``rest``
        values left in the row (the last block)."""
        q = builder.load(column)
        target = builder.gep(dst_data, [builder.add(builder.add(dst0, builder.mul(r, dst_stride)),
                                                    q)])
        pointers = [builder.bitcast(builder.gep(target, [ir.Constant(index, v * lanes)]),
                                    pointer) for v in range(count)]
        masks = [None] * count if rest is None else [builder.icmp_unsigned(
            "<", ir.Constant(positions, list(range(v * lanes, (v + 1) * lanes))),
            _splat(builder, positions, rest)) for v in range(count)]

        def load(address, mask):
            if mask is None:
                return builder.load(address, align=itemsize)
            return builder.call(masked_load, [address, alignment, mask,
                                              ir.Constant(vector, None)])

        sums = [cgutils.alloca_once(builder, vector) for _ in range(count)]
        for slot, address, mask in zip(sums, pointers, masks, strict=True):
            builder.store(load(address, mask), slot)
        shift = builder.add(builder.mul(r, run), q)
        with cgutils.for_range(builder, builder.sub(last, first)) as k:
            at = builder.add(first, k.index)
            value = _splat(builder, vector, builder.load(builder.gep(values_data, [at])))
            channel = builder.sext(builder.load(builder.gep(channels_data, [at])), index)
            row = builder.gep(taps_data, [builder.add(builder.mul(channel, atom_size), shift)])
            for v, (slot, mask) in enumerate(zip(sums, masks, strict=True)):
                tap = load(builder.bitcast(builder.gep(row, [ir.Constant(index, v * lanes)]),
                                           pointer), mask)
                builder.store(builder.call(fused, [value, tap, builder.load(slot)]), slot)
        for slot, address, mask in zip(sums, pointers, masks, strict=True):
            if mask is None:
                builder.store(builder.load(slot), address, align=itemsize)
            else:
                builder.call(masked_store, [builder.load(slot), address, alignment, mask])
        builder.store(builder.add(q, ir.Constant(index, count * lanes)), column)

    big = ir.Constant(index, PATCH_VECTORS * lanes)
    blocks = builder.udiv(run, big)
    rest = builder.trunc(builder.sub(run, builder.mul(blocks, big)), ir.IntType(32))
    vectors_left = builder.udiv(builder.add(rest, ir.Constant(ir.IntType(32), lanes - 1)),
                                ir.Constant(ir.IntType(32), lanes))
    with cgutils.for_range(builder, rows) as r:
        builder.store(ir.Constant(index, 0), column)
        with cgutils.for_range(builder, blocks):
            block(r.index, PATCH_VECTORS)
        for count in range(1, PATCH_VECTORS + 1):  # the values left: one masked block
            with builder.if_then(builder.icmp_unsigned(
                    "==", vectors_left, ir.Constant(ir.IntType(32), count))):
                block(r.index, count, rest)
