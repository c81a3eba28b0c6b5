"""Emulated Raspberry Pi-class boards: the lean install and every engine that has wheels
for the board give the host's answers.

    .venv/bin/python tests/device/board_check.py [--arch arm64] [--arch armhf]

Per architecture (arm64: 64-bit Raspberry Pi OS on a Pi 3/4/5; armhf: 32-bit Raspberry Pi
OS on an armv7 Pi 2/3/Zero 2), through a Debian bookworm root file system built and
cached by ``rootfs.sh`` and run with qemu-user (binfmt_misc) in a chroot:

1. ask PyPI, on the host, which engine extras have wheels for the board
   (``pip download --platform ... --only-binary=:all:``) and say why any is skipped;
2. download the lean install's wheels for the board and export one model to every
   format the board can run (npz; tflite float32 and int8; onnx; the C source of the
   ``native`` backend when that backend exists);
3. inside the board (``on_board.py``): a fresh venv, ``pip install`` offline from those
   wheels, then ``edgelstm run``, ``info`` and ``profile`` on every artifact, and the
   deployment guide's systemd service stopped and restarted from its state file;
4. compare on the host: outputs against the numpy reference (or, for int8, against the
   same file run by LiteRT on the host), ``info --json`` field by field, the service's
   output against one uninterrupted run.

Exits 1 when an answer differs beyond its tolerance or a step fails; prints one table.
Emulated timings are 10-30x slower than a board and mean nothing: answers are tested,
not speed. Needs root (debootstrap, chroot, mounts), debootstrap, qemu-user-static and
binfmt-support.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests"))

CASE = "lstm-last-bias-2x-softmax"  # the zoo's 2-layer LSTM classifier (the lean-install test's case)
ROWS = 40  # streamed rows: enough to carry state through both layers, seconds under qemu
SERVICE_ROWS_FIRST = 20  # the service is stopped (SIGTERM) after this many rows, then resumed
PROFILE_STEPS = 50  # the minimum that gives percentiles; emulated timings are not compared
#: float32 on an Arm engine vs the numpy reference on the host: rounding only (summation
#: order, the engines' tanh/logistic), as in tests/test_tflite.py and test_onnx.py.
FLOAT_TOL = 1e-5
#: int8 on the board's LiteRT vs the same file on the host's LiteRT: integer kernels with
#: fixed-point rescaling, whose Arm (NEON) and x86 paths may round differently: measured
#: one step of the softmax output's int8 scale (1/256 = 3.9e-3) over the 40 rows; two
#: steps leave room for such a difference to carry through the recurrent state once.
INT8_ARCH_TOL = 2 / 256
#: ... and vs the float reference: int8 weights, activations and state over a short
#: stream (tests/test_check.py's INT8_TOL).
INT8_REF_TOL = 0.02
#: The service's split stream against one uninterrupted run on the board: the state file
#: holds the exact float32 state, so the text must be identical (tests/test_state_file.py).
SPLIT_TOL = 0.0
#: `info --json` keys that may differ: where the file is, and the TFLite Micro check the
#: host adds when tflite-micro is installed (it has no Arm wheels).
INFO_HOST_ONLY = {"file", "path", "tflm"}
CACHE = Path(os.environ.get("EDGELSTM_DEVICE_CACHE", "/var/cache/edgelstm-device"))
PY_TAG = f"{sys.version_info.major}{sys.version_info.minor}"
#: the ExecStart of docs/edgelstm.service names this file
SERVICE_ARTIFACT = "model.tflite"
SERVICE_RUN = "litert-float32"  # the planned run whose artifact the service streams


@dataclass
class Board:
    arch: str  # Debian architecture
    machine: str  # `uname -m` on the board
    label: str
    platforms: tuple[str, ...]  # pip --platform tags for the board's wheels
    #: Engine extras the board must run: a missing wheel fails the check.
    required: tuple[str, ...] = ()
    #: numpy from Debian (apt), the venv made with --system-site-packages: PyPI has no
    #: armv7 numpy wheel, and building numpy from source on a Pi Zero takes hours.
    debian_numpy: bool = False
    #: follow the deployment guide (the systemd service) on this board
    service: bool = False
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


BOARDS = {
    "arm64": Board("arm64", "aarch64", "arm64 (Raspberry Pi OS 64-bit, Pi 3/4/5)",
                   ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64",
                    "manylinux2014_aarch64", "linux_aarch64"),
                   required=("litert", "onnxruntime"), service=True),
    "armhf": Board("armhf", "armv7l", "armv7 (Raspberry Pi OS 32-bit, Pi 2/3/Zero 2)",
                   ("manylinux_2_31_armv7l", "manylinux_2_17_armv7l", "manylinux2014_armv7l", "linux_armv7l"),
                   debian_numpy=True),
}


def log(message: str) -> None:
    print(message, flush=True)


def pip_download(requirements: list[str], dest: Path, board: Board, deps: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--only-binary=:all:",
           "--python-version", PY_TAG, "--implementation", "cp", "--abi", f"cp{PY_TAG}", "--abi", "abi3",
           "--abi", "none", "-d", str(dest)]
    for tag in board.platforms:
        cmd += ["--platform", tag]
    if not deps:
        cmd.append("--no-deps")
    return subprocess.run(cmd + requirements, capture_output=True, text=True, timeout=600)


def _last_error(done: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.startswith("ERROR")]
    return lines[-1].removeprefix("ERROR: ") if lines else "pip download failed"


def engine_extras() -> dict[str, list[str]]:
    """Backend -> the pip requirements of its extra (pyproject.toml), for the engines
    the runtime knows. A backend without an extra (numpy, native) needs nothing more."""
    from edgelstm.runtime import BACKENDS

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {name: extras.get(extra, []) if extra else [] for name, (_, _, _, extra) in BACKENDS.items()}


def board_backends(board: Board, wheels: Path) -> list[str]:
    """The backends the board can install, each missing one recorded in board.skipped."""
    usable = []
    if board.debian_numpy:
        got = pip_download(["numpy>=1.23"], wheels / "probe", board, deps=False)
        board.notes.append("numpy from Debian (python3-numpy): " + (
            "PyPI has a wheel now too" if got.returncode == 0 else f"no {board.machine} wheel on PyPI "
                                                                   f"({_last_error(got)})"))
    for backend, reqs in engine_extras().items():
        if backend == "native" and not shutil.which("gcc"):
            board.skipped[backend] = "no C compiler"
            continue
        if not reqs:
            usable.append(backend)
            continue
        got = pip_download(reqs, wheels / "probe", board, deps=False)
        if got.returncode == 0:
            usable.append(backend)
        else:
            board.skipped[backend] = f"no {board.machine} wheel on PyPI ({_last_error(got)})"
    return usable


def copy_package_sources(dst: Path) -> None:
    """What pip needs to build the distribution, copied to ``dst``: pyproject.toml, the
    README and every directory pyproject.toml maps into the package (read from it, so a
    new one cannot be forgotten here)."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    dirs = set(config["tool"]["setuptools"]["package-dir"].values())
    dst.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE", *sorted(dirs)):
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.is_file():
            shutil.copy2(path, dst / name)


def build_wheel(work: Path) -> Path:
    """The checkout as a wheel, built from a copy so the tree stays clean."""
    src = work / "src"
    copy_package_sources(src)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
                           "-w", str(work / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"building the edgelstm wheel failed: {done.stderr[-2000:]}")
    return next((work / "dist").glob("edgelstm-*.whl"))


def download_wheels(board: Board, backends: list[str], wheel: Path, dest: Path) -> str:
    """Wheels of the lean install for the board into ``dest``; returns the requirement to install."""
    extras = sorted({b for b in backends if engine_extras()[b]} & {"litert", "onnxruntime", "tflm"})
    requirement = "edgelstm" + (f"[{','.join(extras)}]" if extras else "")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(wheel, dest)
    if board.debian_numpy:
        # numpy comes from Debian; every other requirement of the lean core is pure Python.
        if extras:
            raise SystemExit(f"{board.arch}: an engine now has wheels ({extras}) but numpy does not: "
                             "extend this check to install it")
        got = pip_download(["click>=8.1"], dest, board)
    else:
        got = pip_download([f"{wheel}[{','.join(extras)}]" if extras else str(wheel)], dest, board)
    if got.returncode != 0:
        raise SystemExit(f"{board.arch}: downloading the wheels failed: {_last_error(got)}")
    return requirement


# -- artifacts and the host's answers ---------------------------------------------------

@dataclass
class Planned:
    name: str
    artifact: Path
    backend: str
    want: np.ndarray  # (ROWS, outputs)
    tol: float
    tol_name: str
    extra_check: tuple[np.ndarray, float, str] | None = None  # (other reference, tol, its name)
    files: list[Path] = field(default_factory=list)  # what the exporter wrote: the artifact first

    @property
    def on_board(self) -> str:
        """The artifact's path in the check directory, beside the files exported with it."""
        return f"artifacts/{self.name}/{self.artifact.name}"


def export_artifacts(work: Path, backends: set[str]) -> tuple[list[Planned], np.ndarray]:
    import zoo
    from edgelstm.converters import EXPORTERS, ExportOptions, export
    from edgelstm.runtime import BACKENDS, load

    spec = zoo.spec(CASE)
    _, stream = zoo.inputs(CASE)
    rows = stream[0, :ROWS]
    ref = zoo.reference_stream(CASE)[:ROWS]
    calib = np.random.default_rng(7).uniform(-1, 1, (16, 40, rows.shape[1])).astype(np.float32)
    out = work / "artifacts"
    suffix_format = {sfx: fmt for fmt, (_, sfx) in EXPORTERS.items()}
    planned = []
    for backend in BACKENDS:
        if backend not in backends:
            continue
        fmt = suffix_format.get(BACKENDS[backend][2][0])
        if fmt is None:
            raise SystemExit(f"no exporter writes {BACKENDS[backend][2][0]} files for the {backend} backend")
        for quantize in ("float32", "int8") if fmt == "tflite" else ("float32",):
            # a C identifier: the C export names its functions after the file
            options = ExportOptions(quantize=quantize, basename=f"{CASE.replace('-', '_')}_{quantize}",
                                    calibration=None if quantize == "float32" else calib)
            name = f"{backend}-{quantize}"
            files = export(spec, fmt, out / name, options)
            path = files[0]
            if quantize == "float32":
                planned.append(Planned(name, path, backend, ref, FLOAT_TOL, "FLOAT_TOL", files=files))
            else:  # the host's own engine on the same file is the reference for the integer kernels
                host = np.asarray(load(path, backend=backend).run(rows))
                planned.append(Planned(name, path, backend, host, INT8_ARCH_TOL, "INT8_ARCH_TOL",
                                       (ref, INT8_REF_TOL, "INT8_REF_TOL"), files=files))
    return planned, rows


@functools.lru_cache(maxsize=None)  # one artifact, several boards
def host_info(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "edgelstm.cli", "info", "--json", str(path)], capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"host info failed: {done.stderr}")
    return json.loads(done.stdout)


# -- inside the board -------------------------------------------------------------------

def run_on_board(board: Board, root: Path, check_dir: Path) -> dict:
    """on_board.py in a chroot, with /proc, /dev and the Pi's /proc/cpuinfo mounted in a
    private mount namespace (the mounts vanish with it, whatever happens)."""
    # LiteRT reads /proc/cpuinfo at Interpreter creation and crashed under qemu-user on the
    # x86 host's; a Raspberry Pi's (marked as emulated) lets it pick its Arm kernels.
    script = (f'set -e; R={root}; mount -t proc proc "$R/proc"; mount --bind {HERE / f"cpuinfo-{board.arch}"} '
              f'"$R/proc/cpuinfo"; mount --rbind /dev "$R/dev"; mount -t tmpfs tmpfs "$R/tmp"; '
              f'exec chroot "$R" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root '
              f'LANG=C.UTF-8 /usr/bin/python3 /srv/edgelstm-check/on_board.py')
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=1800)
    results_path = check_dir / "out" / "results.json"
    if not results_path.exists():
        raise SystemExit(f"{board.arch}: the board produced no results (exit {done.returncode}): "
                         f"{(done.stderr or done.stdout)[-2000:]}")
    return json.loads(results_path.read_text())


def build_root(arch: str) -> Path:
    done = subprocess.run(["bash", str(HERE / "rootfs.sh"), arch, str(CACHE)], stdout=subprocess.PIPE, text=True,
                          timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{arch}: building the root file system failed")
    return Path(done.stdout.strip().splitlines()[-1])


# -- comparing --------------------------------------------------------------------------

def parse_outputs(text: str, width: int) -> np.ndarray:
    """`edgelstm run` output rows (header lines dropped) -> (rows, width) floats."""
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("p_")]
    return np.array([[float(v) for v in ln.split(",")[:width]] for ln in lines], dtype=np.float64).reshape(-1, width)


def max_err(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        return math.inf
    err = np.abs(got - want)
    return float(err.max()) if np.isfinite(err).all() else math.inf  # NaN / inf is a failure


def judge(board: Board, planned: list[Planned], results: dict) -> list[str]:
    """Problems found (empty: the board gives the host's answers). Prints one line per check."""
    problems = []
    if results.get("machine") != board.machine:
        problems.append(f"the board says it is {results.get('machine')!r}, not {board.machine!r}")
    if "aborted" in results:
        step = results.get("install") or results.get("venv") or {}
        return problems + [f"{results['aborted']}: {step.get('stderr', '')[-1500:]}"]
    width = planned[0].want.shape[1]
    for item in planned:
        got = results["runs"].get(item.name)
        if got is None:
            problems.append(f"{item.name}: not run")
            continue
        run, info, prof = got["run"], got["info"], got["profile_json"]
        if run["code"] != 0:
            problems.append(f"{item.name}: `edgelstm run` exited {run['code']}: {run['stderr'][-500:]}")
            continue
        err = max_err(parse_outputs(run["stdout"], width), item.want)
        verdict = "ok" if err <= item.tol else "FAIL"
        line = f"  {item.name:<20} run  max |err| {err:.2e} <= {item.tol_name} {item.tol:.1e}"
        if item.extra_check is not None:
            ref, tol, tol_name = item.extra_check
            err2 = max_err(parse_outputs(run["stdout"], width), ref)
            line += f"; vs float reference {err2:.2e} <= {tol_name} {tol:.1e}"
            if not err2 <= tol:
                verdict = "FAIL"
        log(f"{line}  {verdict}")
        if verdict != "ok":
            problems.append(f"{item.name}: outputs differ from the host's beyond tolerance")
        # info: the same description as on the host, field by field (the path aside)
        if info["code"] != 0:
            problems.append(f"{item.name}: `edgelstm info` exited {info['code']}: {info['stderr'][-500:]}")
        else:
            board_info, want_info = json.loads(info["stdout"]), dict(host_info(item.artifact))
            differs = sorted(k for k in (set(board_info) | set(want_info)) - INFO_HOST_ONLY
                             if board_info.get(k) != want_info.get(k))
            log(f"  {item.name:<20} info {'same as the host' if not differs else 'DIFFERS in ' + ', '.join(differs)}")
            if differs:
                problems.append(f"{item.name}: `edgelstm info` differs from the host's in {differs}")
        # profile: it ran the planned steps on the planned backend, on this machine
        if got["profile"]["code"] != 0 or prof is None:
            problems.append(f"{item.name}: `edgelstm profile` exited {got['profile']['code']}: "
                            f"{got['profile']['stderr'][-500:]}")
        else:
            lat = prof["latency"]
            sane = (prof["backend"] == item.backend and prof["steps"] == PROFILE_STEPS
                    and prof["machine"]["machine"] == board.machine
                    and all(math.isfinite(lat[k]) and lat[k] > 0 for k in ("p50_us", "p99_us")))
            log(f"  {item.name:<20} profile p50 {lat['p50_us']:,.0f} us emulated (not a board's speed)"
                f"{'' if sane else '  FAIL'}")
            if not sane:
                problems.append(f"{item.name}: the profile JSON does not describe this run on {board.machine}")
    if board.service:
        problems += judge_service(results, planned)
    return problems


def judge_service(results: dict, planned: list[Planned]) -> list[str]:
    svc = results.get("service")
    if not svc:
        return ["the deployment guide's service did not run"]
    problems = []
    first, second = svc["starts"]
    if first["code"] != 143 or not first["state_file_exists"]:
        problems.append(f"service stop: exit {first['code']} (want 143 after SIGTERM), state file "
                        f"{'written' if first['state_file_exists'] else 'missing'}: {first['stderr'][-500:]}")
    if second["code"] != 0 or f"({SERVICE_ROWS_FIRST} rows seen)" not in second["stderr"]:
        problems.append(f"service restart: exit {second['code']}, did not resume from the state file: "
                        f"{second['stderr'][-500:]}")
    item = next(p for p in planned if p.name == SERVICE_RUN)
    whole = results["runs"][item.name]["run"]["stdout"]
    width = item.want.shape[1]
    split_lines = [ln for ln in svc["predictions"].splitlines() if not ln.startswith("p_")]
    whole_lines = [ln for ln in whole.splitlines() if not ln.startswith("p_")]
    identical = split_lines == whole_lines  # SPLIT_TOL = 0: the same text
    err = max_err(parse_outputs(svc["predictions"], width), item.want)
    log(f"  service (stopped after {SERVICE_ROWS_FIRST} rows, restarted) max |err| vs host {err:.2e} <= "
        f"FLOAT_TOL; {'identical to' if identical else 'DIFFERS from'} one uninterrupted run "
        f"{'ok' if identical and err <= FLOAT_TOL else 'FAIL'}")
    if not identical or not err <= FLOAT_TOL:
        problems.append("the restarted service's outputs differ from an uninterrupted run")
    return problems


def check_board(board: Board, root: Path, planned_all: list[Planned], rows: np.ndarray,
                wheel: Path, backends: list[str]) -> tuple[list[str], dict]:
    check_dir = root / "srv" / "edgelstm-check"
    shutil.rmtree(check_dir, ignore_errors=True)
    (check_dir / "out").mkdir(parents=True)
    requirement = download_wheels(board, backends, wheel, check_dir / "wheels")
    planned = [p for p in planned_all if p.backend in backends]
    for item in planned:  # with its .json (and a C export's header), as a user copies them
        dest = check_dir / item.on_board
        dest.parent.mkdir(parents=True)
        for path in item.files:
            shutil.copy2(path, dest.parent / path.name)
    np.savetxt(check_dir / "input.csv", rows, delimiter=",", fmt="%.8f")
    plan = {"venv": "/opt/edgelstm", "system_site_packages": board.debian_numpy, "requirement": requirement,
            "debian_packages": ["python3-numpy"] if board.debian_numpy else [], "input": "input.csv",
            "profile_steps": PROFILE_STEPS,
            "runs": [{"name": p.name, "artifact": p.on_board, "backend": p.backend} for p in planned]}
    if board.service:
        service_item = next(p for p in planned if p.name == SERVICE_RUN)
        shutil.copy2(REPO / "docs" / "edgelstm.service", check_dir / "edgelstm.service")
        plan["service"] = {"unit": "edgelstm.service", "artifact": service_item.on_board,
                           "installed_as": SERVICE_ARTIFACT, "rows_first": SERVICE_ROWS_FIRST}
    shutil.copy2(HERE / "on_board.py", check_dir / "on_board.py")
    (check_dir / "plan.json").write_text(json.dumps(plan, indent=1))
    start = time.monotonic()
    results = run_on_board(board, root, check_dir)
    results["seconds"] = round(time.monotonic() - start)
    results["requirement"] = requirement
    return planned, results


def compare_profiles(outcomes: dict, planned_all: list[Planned], work: Path) -> bool:
    """`edgelstm profile --compare` over the host's and every board's profile of the
    numpy artifact: files from three machines in one table (emulated speeds, for the
    format only)."""
    item = next(p for p in planned_all if p.name == "numpy-float32")
    files = [work / "host.json"]
    done = subprocess.run([sys.executable, "-m", "edgelstm.cli", "profile", str(item.artifact), "--steps",
                           str(PROFILE_STEPS), "--warmup", "5", "--json", str(files[0])],
                          capture_output=True, text=True, timeout=300)
    for arch, (_, results) in outcomes.items():
        prof = results.get("runs", {}).get(item.name, {}).get("profile_json")
        if prof:
            files.append(work / f"{arch}.json")
            files[-1].write_text(json.dumps(prof))
    table = subprocess.run([sys.executable, "-m", "edgelstm.cli", "profile", "--compare", *map(str, files)],
                           capture_output=True, text=True, timeout=300)
    machines = {json.loads(f.read_text())["machine"]["machine"] for f in files}
    ok = done.returncode == 0 and table.returncode == 0 and len(machines) == len(files)
    log(f"== `edgelstm profile --compare` of host.json and the boards' ({'ok' if ok else 'FAIL'}):")
    for line in (table.stdout or table.stderr).splitlines():
        log(f"  {line}")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", action="append", choices=sorted(BOARDS), help="Board (default: all).")
    parser.add_argument("--profiles", type=Path, default=None,
                        help="Copy each board's profile JSON files into this directory.")
    args = parser.parse_args(argv)
    boards = [BOARDS[a] for a in (args.arch or BOARDS)]
    t0 = time.monotonic()
    # The slow part first, both boards at once (qemu-user is one core each).
    with ThreadPoolExecutor(len(boards)) as pool:
        roots = dict(zip([b.arch for b in boards], pool.map(build_root, [b.arch for b in boards])))
    log(f"== emulated boards: root file systems ready in {time.monotonic() - t0:.0f} s ({CACHE})")
    work = Path(tempfile.mkdtemp(prefix="edgelstm-device-"))
    try:
        wheel = build_wheel(work)
        per_board = {b.arch: board_backends(b, work / f"wheels-{b.arch}") for b in boards}
        for b in boards:
            missing = [e for e in b.required if e not in per_board[b.arch]]
            if missing:
                raise SystemExit(f"{b.arch}: required engines have no wheels: "
                                 + "; ".join(b.skipped.get(e, e) for e in missing))
        planned_all, rows = export_artifacts(work, set().union(*per_board.values()))
        with ThreadPoolExecutor(len(boards)) as pool:
            jobs = {b.arch: pool.submit(check_board, b, roots[b.arch], planned_all, rows, wheel,
                                        per_board[b.arch]) for b in boards}
            outcomes = {arch: job.result() for arch, job in jobs.items()}
        failed = False
        for b in boards:
            planned, results = outcomes[b.arch]
            log(f"== {b.label}: {' '.join(results.get('packages', []))}")
            size = results.get("venv_bytes")
            debs = results.get("debian_packages") or {}
            log(f"  install `pip install \"{results['requirement']}\"`: venv {size / 2**20:.0f} MiB"
                if size else "  install FAILED")
            for name, d in debs.items():
                log(f"  {name} {d['version']} from Debian: {d['kib'] / 1024:.0f} MiB" if d else f"  {name}: missing")
            for note in b.notes:
                log(f"  {note}")
            for backend, why in b.skipped.items():
                log(f"  skipped {backend}: {why}")
            problems = judge(b, planned, results)
            log(f"  {b.arch}: {'FAIL' if problems else 'ok'} ({results['seconds']} s inside the board)")
            for p in problems:
                log(f"  FAIL {b.arch}: {p}")
            failed |= bool(problems)
            if args.profiles is not None:
                args.profiles.mkdir(parents=True, exist_ok=True)
                for name, got in results["runs"].items():
                    if got.get("profile_json"):
                        (args.profiles / f"{b.arch}-{name}.json").write_text(json.dumps(got["profile_json"]))
        failed |= not compare_profiles(outcomes, planned_all, work)
        log(f"== emulated boards: {'FAILED' if failed else 'passed'} in {time.monotonic() - t0:.0f} s")
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(f"== emulated boards: FAILED: {exc.code}", flush=True)
            sys.exit(1)
        raise
