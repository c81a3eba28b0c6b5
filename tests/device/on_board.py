"""The board's side of the emulated-board check: what a Raspberry Pi owner types, scripted.

Runs inside the emulated root file system with the board's own ``/usr/bin/python3``
(standard library only) and reads ``plan.json`` beside it, written by
``board_check.py`` on the host. It installs the lean runtime into a fresh venv from the
wheels the host downloaded (offline, as ``docs/raspberry-pi.md`` says to install it
online), runs ``edgelstm run / info / profile`` on every planned artifact, then follows
the deployment guide: the shipped systemd unit's ``ExecStart`` is started as its
``User``, fed half the rows, stopped with SIGTERM (what ``systemctl stop`` and a reboot
send), started again and fed the rest. Every command's exit status and output go to
``results.json``; the host compares the answers with its own.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: qemu-user runs a Python start-up (numpy, an engine) in seconds, not milliseconds.
COMMAND_TIMEOUT = 300
SERVICE_WAIT = 300


def sh(argv, **kw) -> dict:
    start = time.monotonic()
    try:
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                              timeout=kw.pop("timeout", COMMAND_TIMEOUT), **kw)
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = "timeout", exc.stdout or "", f"timed out after {exc.timeout} s"
    return {"argv": [str(a) for a in argv], "code": code, "stdout": out if isinstance(out, str) else "",
            "stderr": err if isinstance(err, str) else "", "seconds": round(time.monotonic() - start, 1)}


def tree_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def install(plan: dict, results: dict) -> Path:
    venv = Path(plan["venv"])
    shutil.rmtree(venv, ignore_errors=True)
    made = sh([sys.executable, "-m", "venv", *(["--system-site-packages"] if plan["system_site_packages"] else []),
               venv])
    results["venv"] = made
    if made["code"] != 0:
        raise SystemExit("venv failed")
    # Offline: the wheels were fetched for this architecture on the host; everything else
    # is what a board owner runs (`pip install "edgelstm[litert]"`).
    got = sh([venv / "bin" / "pip", "install", "--no-index", "--find-links", HERE / "wheels",
              "--disable-pip-version-check", plan["requirement"]], timeout=900)
    results["install"] = got
    if got["code"] != 0:
        raise SystemExit("pip install failed")
    results["venv_bytes"] = tree_bytes(venv)
    listed = sh([venv / "bin" / "pip", "list", "--format=freeze", "--disable-pip-version-check"])
    results["packages"] = listed["stdout"].split()
    for name in plan.get("debian_packages", []):  # what the venv takes from the system (armhf numpy)
        size = sh(["dpkg-query", "-W", "-f", "${Installed-Size} ${Version}", name])["stdout"].split()
        results.setdefault("debian_packages", {})[name] = {"kib": int(size[0]), "version": size[1]} if size else None
    return venv


def check_artifacts(plan: dict, exe: Path, results: dict) -> None:
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    for item in plan["runs"]:
        art, backend, name = HERE / item["artifact"], item["backend"], item["name"]
        results["runs"][name] = {
            "run": sh([exe, "run", art, "--input", HERE / plan["input"], "--backend", backend]),
            "info": sh([exe, "info", "--json", art]),
            "profile": sh([exe, "profile", art, "--backend", backend, "--steps", plan["profile_steps"],
                           "--warmup", 5, "--json", out / f"{name}.profile.json"]),
        }
        prof = out / f"{name}.profile.json"
        results["runs"][name]["profile_json"] = json.loads(prof.read_text()) if prof.exists() else None


def unit_settings(path: Path) -> dict:
    """[Service] keys of a unit file (the last value wins, as in systemd)."""
    settings, section = {}, ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line:
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def follow_guide(plan: dict, results: dict) -> None:
    """The guide's service, with a pipe standing in for the serial port."""
    svc = plan["service"]
    unit = unit_settings(HERE / svc["unit"])
    user = unit["User"]
    state_dir = Path("/var/lib") / unit["StateDirectory"]
    # The guide's one-time set-up (systemd would create StateDirectory itself).
    if sh(["id", user])["code"] != 0:
        sh(["useradd", "--system", "--home-dir", state_dir, "--shell", "/usr/sbin/nologin", user])
    shutil.rmtree(state_dir, ignore_errors=True)  # a fresh board: no state from an earlier check
    sh(["install", "-d", "-o", user, "-g", user, state_dir])
    sh(["install", "-m", "644", HERE / svc["artifact"], state_dir / svc["installed_as"]])
    argv = shlex.split(unit["ExecStart"])
    appended = Path(unit["StandardOutput"].removeprefix("append:"))
    rows = (HERE / plan["input"]).read_text().splitlines(keepends=True)
    first = svc["rows_first"]
    as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
    log = {"exec_start": unit["ExecStart"], "user": user, "starts": []}
    results["service"] = log

    def start(feed: list[str], stop_with_sigterm: bool) -> None:
        err_path = HERE / "out" / f"service-{len(log['starts'])}.err"
        with open(appended, "ab") as out_fh, open(err_path, "wb") as err_fh:
            proc = subprocess.Popen(as_user + argv, stdin=subprocess.PIPE, stdout=out_fh, stderr=err_fh,
                                    text=True)
            entry = {"fed": len(feed)}
            start_lines = _lines(appended)
            proc.stdin.write("".join(feed))
            proc.stdin.flush()
            if stop_with_sigterm:
                # Wait until every fed row has its output (the header, then one line per row),
                # then stop it as systemd does.
                deadline = time.monotonic() + SERVICE_WAIT
                while _lines(appended) < start_lines + 1 + len(feed) and time.monotonic() < deadline:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.2)
                proc.send_signal(signal.SIGTERM)
                proc.stdin.close()
            else:
                proc.stdin.close()  # the sensor stops: end of input, a normal exit
            try:
                entry["code"] = proc.wait(timeout=SERVICE_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                entry["code"] = "timeout"
        entry["stderr"] = err_path.read_text()
        entry["state_file_exists"] = (state_dir / "state.npz").exists()
        log["starts"].append(entry)

    start(rows[:first], stop_with_sigterm=True)
    start(rows[first:], stop_with_sigterm=False)
    log["predictions"] = appended.read_text() if appended.exists() else ""


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def main() -> None:
    plan = json.loads((HERE / "plan.json").read_text())
    results = {"machine": os.uname().machine, "python": sys.version.split()[0], "runs": {}}
    try:
        venv = install(plan, results)
        check_artifacts(plan, venv / "bin" / "edgelstm", results)
        if plan.get("service"):
            follow_guide(plan, results)
    except SystemExit as exc:
        results["aborted"] = str(exc)
    finally:
        (HERE / "out").mkdir(exist_ok=True)
        (HERE / "out" / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
