"""GPU check of the CUDA engine on a real device (prepared for an NVIDIA H200, no network).

Usage (from the repository root, without ``NUMBA_ENABLE_CUDASIM``)::

    python scripts/gpu_check.py RESULTS_DIR [--total SECONDS]

Three stages, each in its own subprocess with its own timeout (the whole run stays under
``--total``, default 480 s = 8 minutes), each writing its results as it goes so that a killed
stage still leaves what it finished:

1. ``env.json``: Python, NumPy, Numba, numba-cuda, SciPy, pytest, Hypothesis and
   pytest-benchmark versions, ``mlverify._cuda.info()`` (device, compute capability, driver)
   and a ``from numba import cuda`` smoke test (a tiny kernel, checked).
2. ``junit.xml``, ``tests.log``: ``pytest tests/cuda`` on the real device (the ``cuda`` tests,
   the LLVM lowering for compute capability 9.0 and the support module). Without
   Hypothesis the test files that import it are left out (listed in ``tests.log`` and
   ``env.json``) and ``tests/conftest.py`` (Hypothesis profiles) is not loaded; ``addopts`` is
   cleared (pytest-benchmark may be absent).
3. ``bench.json`` (the fields of pytest-benchmark's JSON: ``machine_info``, ``benchmarks`` with
   ``name``, ``group``, ``stats`` and ``extra_info``), every benchmark warmed up (JIT) outside
   the timing, float32:

   - ``cbpdn_fista``: CBPDN on a 256x256 image (SPORCO's kodim23 crop with its Tikhonov
     high-pass and its ``G:12x12x36`` dictionary when SPORCO is installed, else a deterministic
     synthetic image and random 12x12 atoms), λ = 5e-2, by the device FISTA: time per
     iteration (difference of two fixed-length runs, so the host certificate cancels) as
     **ns per coefficient-iteration** (goal ≤ 0.2 ns; SPORCO-CUDA 1.45 ns on an RTX 2080 Ti),
     and the time and iterations to certified relative gaps 1e-3 and 1e-4;
   - ``forward_pass_{float32,float64}``: the 2-layer ReLU forward pass of ``mlverify bench
     cnn`` (256x256, 1→32 atoms 8x8 → 64 atoms 5x5, thresholds for its standard densities),
     against PyTorch's ``conv2d`` on the same GPU (:class:`mlverify.bench.cnn.Torch`; results
     checked against each other first);
   - ``ml_ista_iteration_{float32,float64}``: one non-negative ML-ISTA iteration of that model
     from the bench's warm start (difference of two runs), against PyTorch's step on the GPU;
   - ``batched_fista``: 1024 small 1-D FISTA problems (N = 64, 8 atoms of 8 taps) in one
     launch sequence against the CPU engine one problem at a time (a sample of them),
     throughput in problems per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Share of the total budget of each stage (env, tests, bench).
SHARES = {"env": 0.1, "tests": 0.45, "bench": 0.45}
#: Seconds a stage past its timeout gets, after an interrupt, to write its summary.
INTERRUPT_GRACE = 20


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _write(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))


# ------------------------------------------------------------------------------------ stage 1
#: ``numba.cuda``, imported by :func:`stage_env` only (a kernel resolves it as a global).
cuda = None


def _add_one(values):
    """The smoke-test kernel: ``values[i] += 1``."""
    i = cuda.threadIdx.x + cuda.blockIdx.x * cuda.blockDim.x
    if i < values.shape[0]:
        values[i] += 1.0


def stage_env(out: Path) -> None:
    global cuda
    env: dict = {
        "python": sys.version,
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in (
            "numpy", "numba", "numba-cuda", "scipy", "pytest", "hypothesis", "pytest-benchmark",
            "sporco")},
        "simulator": os.environ.get("NUMBA_ENABLE_CUDASIM"),
    }
    _write(out / "env.json", env)
    try:
        import numpy as np
        from numba import cuda

        values = cuda.to_device(np.arange(1000, dtype=np.float32))
        cuda.jit(_add_one)[8, 128](values)
        ok = bool(np.array_equal(values.copy_to_host(), np.arange(1000) + 1.0))
        env["smoke_kernel"] = "ok" if ok else "WRONG RESULT"
    except Exception as error:  # record, never crash: the next stages still run
        env["smoke_kernel"] = f"failed: {type(error).__name__}: {error}"
    _write(out / "env.json", env)
    try:
        env["driver_version"] = cuda.cudadrv.driver.driver.get_version()
        env["runtime_version"] = cuda.runtime.get_version()
    except Exception as error:
        env["driver_version"] = f"unknown: {type(error).__name__}: {error}"
    _write(out / "env.json", env)
    try:
        from mlverify import _cuda

        env["mlverify_cuda"] = _cuda.info()
    except Exception as error:
        env["mlverify_cuda"] = f"failed: {type(error).__name__}: {error}"
    _write(out / "env.json", env)


# ------------------------------------------------------------------------------------ stage 2
def test_command(out: Path) -> tuple[list[str], list[str]]:
    """The pytest command line and the test files left out (they need Hypothesis)."""
    command = [sys.executable, "-m", "pytest", "-v", "--tb=short", "-o", "addopts=", "-ra",
               f"--junitxml={out / 'junit.xml'}"]
    left_out: list[str] = []
    if _version("hypothesis") is None:
        command.append("--noconftest")
        for path in sorted((ROOT / "tests" / "cuda").glob("test_*.py")):
            if "hypothesis" in path.read_text():
                left_out.append(str(path.relative_to(ROOT)))
                command.append(f"--ignore={path}")
    command.append(str(ROOT / "tests" / "cuda"))
    return command, left_out


# ------------------------------------------------------------------------------------ stage 3
def _image(rng, size: int):
    """(256x256 float32 image, its description): kodim23 high-passed as in SPORCO's CBPDN
    example when SPORCO is there, else a deterministic synthetic image, high-passed alike."""
    import numpy as np

    try:
        from sporco import signal as sporco_signal
        from sporco import util

        image = util.ExampleImages().image("kodim23.png", scaled=True, gray=True,
                                           idxexp=np.s_[160:160 + size, 60:60 + size])
        _, high = sporco_signal.tikhonov_filter(image, 10.0, 16)
        return high.astype(np.float32), f"kodim23 {size}x{size} grey crop, Tikhonov high-pass"
    except Exception:
        y, x = np.mgrid[0:size, 0:size] / size
        image = (0.5 + 0.25 * np.sin(12 * x + 4 * y) * np.cos(9 * y) + 0.2 * (x + y > 1.1)
                 + 0.05 * rng.standard_normal((size, size)))
        # Tikhonov high-pass (periodic): low = argmin ½‖low - s‖² + (λ/2)‖∇low‖², λ = 10
        fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
        laplacian = (2 - 2 * np.cos(2 * np.pi * fy)) + (2 - 2 * np.cos(2 * np.pi * fx))
        low = np.real(np.fft.ifft2(np.fft.fft2(image) / (1 + 10.0 * laplacian)))
        return (image - low).astype(np.float32), f"synthetic {size}x{size}, high-passed"


def _dictionary(rng, atoms: int, taps: int):
    import numpy as np

    from mlverify import ConvDictionary

    try:
        from sporco import util

        if (atoms, taps) != (36, 12):
            raise ValueError("only G:12x12x36 is bundled")
        bundled = util.convdicts()["G:12x12x36"]  # (12, 12, 36)
        filters = np.ascontiguousarray(np.transpose(bundled, (2, 0, 1)))[:, None]
        return ConvDictionary(filters.astype(np.float32)).normalized(), "SPORCO G:12x12x36"
    except Exception:
        filters = rng.standard_normal((atoms, 1, taps, taps)).astype(np.float32)
        return ConvDictionary(filters).normalized(), f"random {taps}x{taps}x{atoms}"


def _stats(times: list[float]) -> dict:
    import numpy as np

    values = np.asarray(times, dtype=float)
    return {"min": float(values.min()), "max": float(values.max()),
            "mean": float(values.mean()), "median": float(np.median(values)),
            "stddev": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "rounds": int(values.size), "ops": float(1.0 / values.mean())}


def _timed(function, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


#: Problem sizes: the real ones, and tiny ones for a dry run of the script in the simulator.
SIZES = {
    "real": {"image": 256, "atoms": 36, "taps": 12, "trials": 1024,
             "cpu_sample": 128, "iterations": (20, 220), "ml_iterations": (3, 103), "rounds": 3,
             "cnn_crop": 256, "cnn_dtypes": ("float32", "float64"), "cnn_rounds": 30},
    "dry": {"image": 8, "atoms": 2, "taps": 3, "trials": 3,
            "cpu_sample": 2, "iterations": (2, 4), "ml_iterations": (1, 2), "rounds": 1,
            "cnn_crop": 8, "cnn_dtypes": ("float32",), "cnn_rounds": 1},
}


def _host(array):
    """A NumPy copy of a device array (Numba's or a PyTorch tensor) or host array."""
    import numpy as np

    from mlverify import _cuda

    if hasattr(array, "cpu"):
        return array.cpu().numpy()
    return array.copy_to_host() if _cuda.is_device_array(array) else np.asarray(array)


def _mlcsc(record, sizes: dict, dtype) -> None:
    """The CNN comparison of ``mlverify bench cnn`` on the device: the same model (1 → 32 atoms
    8x8 → 64 atoms 5x5), image and thresholds (the standard densities :data:`cnn.STANDARD`),
    ours by ``engine="cuda"`` against PyTorch's ``conv2d``/``conv_transpose2d`` on the GPU
    (:class:`mlverify.bench.cnn.Torch`), each checked against the other before timing."""
    import numpy as np

    from mlverify import _cuda, layered_thresholding, ml_ista
    from mlverify.bench import cnn

    rounds, name = sizes["rounds"], np.dtype(dtype).name
    dtype = np.dtype(dtype).type
    net, crop = cnn.model(dtype), sizes["cnn_crop"]
    y = np.ascontiguousarray(cnn.image(dtype)[0][:, :crop, :crop])
    betas = cnn.thresholds(net, y, cnn.STANDARD)
    mu, t = cnn._ml_ista_steps(net, y)
    x = _cuda.to_device(y)
    rtol = 1e-3 if dtype == np.float32 else 1e-9

    def ours_forward():
        return layered_thresholding(net, x, betas, "relu", engine="cuda")

    ours = ours_forward()  # JIT warm-up
    extra = {"dtype": name, "betas": betas, "mu": mu, "t": t,
             "densities": [float(np.count_nonzero(_host(c))) / c.size for c in ours.codes]}
    try:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        peer = cnn.Torch(torch, net, device)
        y_torch = torch.from_numpy(y[None]).to(device)
        theirs = _host(peer.forward(y_torch, betas))[0]
        scale = float(np.abs(theirs).max()) or 1.0
        np.testing.assert_allclose(_host(ours.codes[-1]), theirs, rtol=rtol, atol=rtol * scale)
    except Exception as error:  # no PyTorch, or a mismatch: record it, time ours alone
        peer, extra["torch"] = None, f"{type(error).__name__}: {error}"
    else:
        extra["torch"] = f"torch {torch.__version__} on {device}"

    def against_torch(extra: dict, ours: list[float], function) -> None:
        """PyTorch's best time and the ratio; on a GPU in float32 also with TF32 off (cuDNN's
        default rounds float32 convolutions' operands to TF32's 10-bit mantissa)."""
        if peer is None:
            return

        def call():
            function()
            if device == "cuda":
                torch.cuda.synchronize()

        best = min(_timed(call, sizes["cnn_rounds"]))
        extra["torch_best_s"], extra["speedup_vs_torch"] = best, best / min(ours)
        if device == "cuda" and dtype == np.float32:
            torch.backends.cudnn.allow_tf32 = False
            try:
                best = min(_timed(call, sizes["cnn_rounds"]))
            finally:
                torch.backends.cudnn.allow_tf32 = True
            extra["torch_no_tf32_best_s"] = best
            extra["speedup_vs_torch_no_tf32"] = best / min(ours)

    forward = _timed(ours_forward, sizes["cnn_rounds"])
    against_torch(extra, forward, lambda: peer.forward(y_torch, betas))
    record(f"forward_pass_{name}", "mlcsc", forward, **extra)

    start = ml_ista(net, y, betas, mu, t, max_iter=cnn.SETTLE, nonneg=True,
                    check_every=cnn.SETTLE).codes[-1]  # the bench's warm start (CPU engine)

    def ours_ml(n):
        return lambda: ml_ista(net, x, betas, mu, t, max_iter=n, nonneg=True, x0=start,
                               check_every=n, engine="cuda")

    one = _host(ours_ml(1)().codes[-1])  # JIT warm-up
    extra = {"dtype": name, "lams": betas}
    if peer is not None:
        try:
            gamma = torch.from_numpy(start[None]).to(device)
            step = _host(peer.ml_ista_step(y_torch, gamma, betas, mu, t)[1])[0]
            scale = float(np.abs(step).max()) or 1.0
            np.testing.assert_allclose(one, step, rtol=rtol, atol=rtol * scale)
        except AssertionError as error:
            peer, extra["torch"] = None, f"mismatch: {error}"
    few, many = sizes["ml_iterations"]
    short, long = _timed(ours_ml(few), rounds), _timed(ours_ml(many), rounds)
    iteration = [(b - a) / (many - few) for a, b in zip(short, long, strict=True)]
    against_torch(extra, iteration, lambda: peer.ml_ista_step(y_torch, gamma, betas, mu, t))
    record(f"ml_ista_iteration_{name}", "mlcsc", iteration, **extra)


def stage_bench(out: Path, deadline: float, sizes: dict) -> None:
    import numpy as np

    from mlverify import ConvDictionary, _cuda
    from mlverify.pursuits import _device
    from mlverify.pursuits._basis_pursuit import basis_pursuit

    results = {
        "machine_info": {"node": platform.node(), "python_version": platform.python_version(),
                         "cuda": _cuda.info()},
        "datetime": datetime.now(UTC).isoformat(),
        "version": "mlverify gpu_check 1",
        "benchmarks": [],
    }

    def record(name: str, group: str, times: list[float], **extra) -> None:
        results["benchmarks"].append({"name": name, "group": group, "stats": _stats(times),
                                      "extra_info": extra})
        _write(out / "bench.json", results)
        print(f"{name}: median {np.median(times):.6g} s {extra}", flush=True)

    def left() -> float:
        return deadline - time.time()

    rng = np.random.default_rng(0)
    _write(out / "bench.json", results)

    # CBPDN by the device FISTA -----------------------------------------------------------
    image, image_source = _image(rng, sizes["image"])
    D, dict_source = _dictionary(rng, sizes["atoms"], sizes["taps"])
    y = _cuda.to_device(image[None])
    lam, coefficients = 5e-2, D.n_atoms * image.size
    _device.basis_pursuit(D, y, lam, tol=1e-12, max_iter=3, check_every=3)  # JIT warm-up

    def fixed(n):
        return lambda: _device.basis_pursuit(D, y, lam, tol=1e-12, max_iter=n, check_every=n)

    (few, many), rounds = sizes["iterations"], sizes["rounds"]
    short, long = _timed(fixed(few), rounds), _timed(fixed(many), rounds)
    per_iteration = [(b - a) / (many - few) for a, b in zip(short, long, strict=True)]
    record("cbpdn_fista_iteration", "cbpdn", per_iteration,
           ns_per_coefficient_iteration=float(np.median(per_iteration)) / coefficients * 1e9,
           goal_ns=0.2, sporco_cuda_rtx2080ti_ns=1.45, image=image_source,
           dictionary=dict_source, lam=lam, coefficients=coefficients)
    for tol in (1e-3, 1e-4):
        if left() < 60:
            break
        start = time.perf_counter()
        result = _device.basis_pursuit(D, y, lam, tol=tol, max_iter=3000, check_every=50)
        record(f"cbpdn_fista_to_gap_{tol:g}", "cbpdn", [time.perf_counter() - start],
               iterations=result.n_iter, status=result.status, gap=result.certificate,
               certificate_checks=len(result.history.get("iteration", [])),
               note="includes the float64 host certificates every 50 iterations")

    # 2-layer model: forward pass and ML-ISTA iteration, against PyTorch on the device -------
    for dtype in sizes["cnn_dtypes"]:
        if left() > 40:
            _mlcsc(record, sizes, dtype)

    # Batched theorem-like trials ------------------------------------------------------------
    if left() > 30:
        small = ConvDictionary(rng.standard_normal((8, 1, 8)).astype(np.float32)).normalized()
        trials = sizes["trials"]
        codes = (rng.standard_normal((trials, 8, 64)) * (rng.random((trials, 8, 64)) < 0.03))
        signals = small.synthesize(codes.astype(np.float32)) + 0.01 * rng.standard_normal(
            (trials, 1, 64)).astype(np.float32)
        signals = signals.astype(np.float32)
        _device.basis_pursuit(small, signals[:4], 0.1, tol=1e-4, max_iter=20)  # warm-up
        start = time.perf_counter()
        batch = _device.basis_pursuit(small, signals, 0.1, tol=1e-4, max_iter=5000)
        gpu = time.perf_counter() - start
        record("batched_fista_1024x_1d_N64_m8_n8_gpu", "trials", [gpu], problems=trials,
               problems_per_second=trials / gpu, iterations=batch.n_iter, status=batch.status)
        basis_pursuit(small, signals[0], 0.1, tol=1e-4, engine="cpu")  # warm-up
        sample = sizes["cpu_sample"]
        start = time.perf_counter()
        for b in range(sample):
            basis_pursuit(small, signals[b], 0.1, tol=1e-4, max_iter=5000, engine="cpu")
            if left() < 10:
                sample = b + 1
                break
        cpu = time.perf_counter() - start
        record("batched_fista_1d_N64_m8_n8_cpu_one_by_one", "trials", [cpu / sample],
               problems_per_second=sample / cpu, problems_timed=sample,
               gpu_speedup=(trials / gpu) / (sample / cpu))


# ------------------------------------------------------------------------------------ driver
def _run_stage(name: str, command: list[str], timeout: float, out: Path, log: Path,
               dry_run: bool = False) -> dict:
    env = dict(os.environ)
    if not dry_run:
        env.pop("NUMBA_ENABLE_CUDASIM", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    start = time.time()
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle,
                                   stderr=subprocess.STDOUT)
        try:
            rc = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # interrupt first: pytest then writes its summary
            rc = "timeout"
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=INTERRUPT_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    summary = {"stage": name, "returncode": rc, "seconds": round(time.time() - start, 1),
               "timeout": round(timeout, 1), "log": log.name}
    print(json.dumps(summary), flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="directory for the results (created)")
    parser.add_argument("--total", type=float, default=480.0, help="overall limit, seconds")
    parser.add_argument("--stage", choices=["env", "bench"], help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny benchmark sizes (to try the script under the simulator)")
    args = parser.parse_args(argv)
    out = args.results.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.stage == "env":
        stage_env(out)
        return 0
    if args.stage == "bench":
        stage_bench(out, args.deadline, SIZES["dry" if args.dry_run else "real"])
        return 0
    start = time.time()
    summaries = []
    me = [sys.executable, str(Path(__file__).resolve()), str(out)]
    summaries.append(_run_stage("env", [*me, "--stage", "env"], SHARES["env"] * args.total,
                                out, out / "env.log", args.dry_run))
    command, left_out = test_command(out)
    if left_out:
        note = (f"hypothesis is not installed: left out {', '.join(left_out)} and "
                "tests/conftest.py (Hypothesis profiles)")
        print(note, flush=True)
        (out / "tests_left_out.txt").write_text(note + "\n")
    remaining = args.total - (time.time() - start)
    summaries.append(_run_stage("tests", command, min(SHARES["tests"] * args.total,
                                                      remaining - SHARES["bench"] * args.total),
                                out, out / "tests.log", args.dry_run))
    remaining = args.total - (time.time() - start) - 5
    summaries.append(_run_stage("bench", [*me, "--stage", "bench", "--deadline",
                                          str(time.time() + remaining - 10),
                                          *(["--dry-run"] if args.dry_run else [])],
                                remaining, out, out / "bench.log", args.dry_run))
    _write(out / "summary.json", {"stages": summaries, "tests_left_out": left_out,
                                  "seconds": round(time.time() - start, 1)})
    return 0 if all(s["returncode"] == 0 for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
