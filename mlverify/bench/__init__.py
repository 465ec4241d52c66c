"""Side-by-side benchmarks against the peers a user would otherwise pick (DESIGN.md §7).

Every comparison runs both contenders in one process, on the same data, dtype and thread count,
and reports ratios ``peer time / mlverify time`` (> 1: mlverify is faster) against the goals of
DESIGN.md §7. The peers (SPORCO, alphacsc, PyTorch) come with the ``compare`` extra; a comparison
whose peer is missing is reported as skipped, never faked. ``mlverify bench`` runs them.
"""
