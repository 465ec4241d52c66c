"""Scalar math shared by the CPU and CUDA kernels (``register_jitable``: callable from both).

- hard threshold :math:`H_\\beta(v) = v\\,1[|v| > \\beta]`
- soft threshold :math:`S_\\beta(v) = \\mathrm{sign}(v)\\max(|v| - \\beta, 0)`
- non-negative soft threshold
  :math:`S^+_\\beta(v) = \\max(v - \\beta, 0) = \\mathrm{ReLU}(v - \\beta)`

``KIND_*`` are the integer codes the kernels take for the threshold kind; ``KIND_NONE`` is the
identity (no threshold). :func:`row_block` is the index math of kernels whose parallel tasks
are (row, block of a row).
"""

from numba.extending import register_jitable

KIND_NONE = -1
KIND_HARD = 0
KIND_SOFT = 1
KIND_RELU = 2
KINDS = {"hard": KIND_HARD, "soft": KIND_SOFT, "relu": KIND_RELU}


@register_jitable
def hard(v, beta):
    """:math:`H_\\beta(v)`."""
    return v if abs(v) > beta else abs(v) * 0.0


@register_jitable
def soft(v, beta):
    """:math:`S_\\beta(v)`."""
    if v > beta:
        return v - beta
    if v < -beta:
        return v + beta
    return abs(v) * 0.0


@register_jitable
def relu(v, beta):
    """:math:`S^+_\\beta(v)`."""
    return v - beta if v > beta else abs(v) * 0.0


@register_jitable
def shrink(v, beta, kind):
    """Dispatch on ``kind`` (one of the ``KIND_*`` codes)."""
    if kind == KIND_NONE:
        return v
    if kind == KIND_HARD:
        return hard(v, beta)
    if kind == KIND_SOFT:
        return soft(v, beta)
    return relu(v, beta)


@register_jitable
def row_block(task, n_blocks, block, size):
    """``(row, start, stop)`` of parallel task ``task`` when each of the rows of length ``size``
    is cut into ``n_blocks`` blocks of ``block`` entries (the last one shorter)."""
    start = (task % n_blocks) * block
    return task // n_blocks, start, min(size, start + block)
