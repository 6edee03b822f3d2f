#!/usr/bin/env python
"""Screenshots of TensorBoard as a new user first sees it, in headless Chromium.

    python scripts/tb_screenshots.py                       # two short runs, then the shots
    python scripts/tb_screenshots.py --runs /tmp/tb_runs   # keep (or reuse) the runs there
    python scripts/tb_screenshots.py --out /tmp/shots --steps 100

Trains two short runs (the README's quickstart job and the ring-of-8 toy, ``--steps`` G steps
each, every measurement frequent enough to draw curves), serves them with ``tensorboard
--logdir`` on a free local port and writes, at ``--width`` x ``--height`` px:

    quickstart_custom_scalars.png   Custom Scalars of the quickstart run
    quickstart_scalars.png          Scalars of the quickstart run
    toy_custom_scalars.png          Custom Scalars of the toy run
    hparams.png                     HParams of both runs, --hparams-width wide (TensorBoard
                                    gives every column 10em: 1,600 px show the five
                                    hyperparameters and FID, the bracket follows)

A run dir under ``--runs`` that already holds a finished run is not trained again.  Needs a
Chromium (``apt-get install chromium``; ``--chromium PATH`` for another one) and the
Fashion-MNIST files the quickstart job reads.  Writes only under ``--out`` and ``--runs``
(a temporary folder by default).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _chromium import FLAGS as CHROMIUM_FLAGS

ROOT = Path(__file__).resolve().parents[1]


def runs_to_train(steps: int) -> dict[str, list[str]]:
    """Run name -> gansn-train overrides: measurements every ~steps/10, evaluations 4 times."""
    every = max(steps // 10, 1)
    common = [
        f"steps={steps}",
        f"log_every={max(steps // 20, 1)}",
        f"lipschitz_every={every}",
        f"metrics.eval_every={max(steps // 4, 1)}",
        f"sample_every={steps}",
        "ckpt_every=0",
    ]
    return {
        "quickstart": ["experiment=quickstart", *common],
        "toy_ring8": ["experiment=toy_ring8", "metrics=toy", *common],
    }


def train(runs: Path, steps: int) -> None:
    gansn_train = Path(sys.executable).parent / "gansn-train"
    for name, overrides in runs_to_train(steps).items():
        run_dir = runs / name
        status = run_dir / "status.json"
        if status.is_file() and json.loads(status.read_text()).get("status") == "completed":
            print(f"{run_dir}: finished, not trained again", file=sys.stderr)
            continue
        cmd = [str(gansn_train), *overrides, f"hydra.run.dir={run_dir}"]
        print("+", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, cwd=ROOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def logdir_of(runs: Path, names: list[str], where: Path) -> Path:
    """``where/runs``: copies of the event files of ``names``, each run under its name
    (TensorBoard shows the logdir as given: served from ``where`` as "runs")."""
    for name in names:
        (where / "runs" / name).mkdir(parents=True)
        for f in (runs / name).glob("events.out.tfevents.*"):
            shutil.copy2(f, where / "runs" / name / f.name)
    return where


class TensorBoard:
    """``tensorboard --logdir runs`` in ``logdir`` on a free port, until the ``with`` block
    ends."""

    def __init__(self, logdir: Path, runs: list[str], timeout: float = 120) -> None:
        self.logdir, self.runs, self.timeout = logdir, runs, timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> TensorBoard:
        cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", "runs"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.logdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited {self.proc.returncode}: {' '.join(cmd)}")
            try:
                with urllib.request.urlopen(self.url + "data/plugin/scalars/tags", timeout=5) as r:
                    tags = json.load(r)
                if all(tags.get(run) for run in self.runs):
                    return self
            except OSError:
                pass
            time.sleep(1)
        self.__exit__()
        raise TimeoutError(f"tensorboard at {self.url} did not list {self.runs} in time")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Chromium:
    """A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-
    pipe``: JSON messages ending in NUL on fds 3 and 4), so no package beyond the standard
    library is needed.

    Screenshots wait in real time until the page has loaded and made no request for
    ``quiet`` seconds: ``--screenshot`` with ``--virtual-time-budget`` hung for good on some
    attempts on a loaded host (the renderer idle, TensorBoard answering).
    """

    def __init__(self, binary: str, log: Path) -> None:
        to_browser, self._cmd_w = os.pipe()
        self._resp_r, from_browser = os.pipe()
        argv = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={log.parent}"]
        argv += ["--remote-debugging-pipe", "about:blank"]
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
            (os.POSIX_SPAWN_DUP2, to_browser, 3),
            (os.POSIX_SPAWN_DUP2, from_browser, 4),
        ]
        # its own session: closing it ends the renderer and GPU processes too
        self.pid = os.posix_spawn(binary, argv, os.environ, file_actions=actions, setsid=True)
        os.close(to_browser)
        os.close(from_browser)
        self._buf, self._id, self._events = b"", 0, []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._resp_r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._resp_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, session: str | None = None, timeout: float = 120, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def screenshot(
        self, url: str, out: Path, width: int, height: int, timeout: float, quiet: float
    ) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        s = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            s,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.enable", s)
        self.call("Network.enable", s)
        self.call("Page.navigate", s, url=url)
        deadline = time.monotonic() + timeout
        state = {"loaded": False, "pending": set(), "last": time.monotonic(), "seen": 0}

        def handle(events: list[dict]) -> None:
            for ev in events:
                method, p = ev.get("method", ""), ev.get("params", {})
                if method == "Page.loadEventFired":
                    state["loaded"] = True
                elif method == "Network.requestWillBeSent":
                    state["pending"].add(p["requestId"])
                    state["seen"] += 1
                elif method in ("Network.loadingFinished", "Network.loadingFailed"):
                    state["pending"].discard(p["requestId"])
                else:
                    continue
                state["last"] = time.monotonic()
            events.clear()

        while True:
            # the page has loaded and asked for nothing for `quiet` seconds ...
            while not (
                state["loaded"]
                and not state["pending"]
                and time.monotonic() - state["last"] > quiet
            ):
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{url} still loading after {timeout:.0f} s")
                with contextlib.suppress(TimeoutError):
                    self._events.append(self._read(min(deadline, time.monotonic() + 0.5)))
                handle(self._events)
            # ... and its main thread has gone idle (on a busy host it may still be drawing
            # what it fetched, and then ask for more) without asking for anything new
            seen = state["seen"]
            idle = "new Promise(r => requestIdleCallback(() => r(1), {timeout: 60000}))"
            self.call("Runtime.evaluate", s, timeout=120, expression=idle, awaitPromise=True)
            handle(self._events)
            if state["seen"] == seen and not state["pending"]:
                break
        png = self.call("Page.captureScreenshot", s, format="png")["data"]
        out.write_bytes(base64.b64decode(png))
        self.call("Target.closeTarget", targetId=target)

    def close(self) -> None:
        """Close the browser, then end whatever is left of its session."""
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.call("Browser.close", timeout=10)
        done = False
        for _ in range(20):
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                done = True
                break
            time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # helpers it left, or itself when it hangs
        if not done:
            os.waitpid(self.pid, 0)
        os.close(self._cmd_w)
        os.close(self._resp_r)


def screenshot(
    binary: str, url: str, out: Path, width: int, height: int, timeout: float, quiet: float
) -> None:
    """One screenshot of ``url`` in a fresh profile (TensorBoard keeps settings per profile)."""
    with tempfile.TemporaryDirectory(prefix="tb_chromium_") as profile:
        browser = Chromium(binary, Path(profile) / "chromium.log")
        try:
            browser.screenshot(url, out, width, height, timeout, quiet)
        except (RuntimeError, TimeoutError) as err:
            tail = (Path(profile) / "chromium.log").read_text(errors="replace")[-500:]
            raise RuntimeError(f"{err}; Chromium's log ends: {tail}") from None
        finally:
            browser.close()
    shrink(out)


def shrink(png: Path) -> None:
    """TensorBoard is drawn in few flat colours: a 256-colour palette keeps it exact enough
    at a third of the size."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(png) as im:
        small = im.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    small.save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "tensorboard")
    ap.add_argument("--runs", type=Path, help="where the runs go (default: a temporary folder)")
    ap.add_argument("--steps", type=int, default=200, help="G steps of each run (default 200)")
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--hparams-width", type=int, default=1920)
    ap.add_argument("--hparams-height", type=int, default=560)
    ap.add_argument(
        "--quiet", type=float, default=3, help="seconds without a request before a shot"
    )
    ap.add_argument(
        "--timeout", type=float, default=600, help="seconds one screenshot may take (default 600)"
    )
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so TensorBoard and Chromium are closed on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not Path(args.chromium).is_file():
        ap.error(f"no Chromium at {args.chromium}; install chromium or pass --chromium PATH")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tb_shots_") as tmp:
        runs = (args.runs or Path(tmp) / "runs").resolve()
        runs.mkdir(parents=True, exist_ok=True)
        train(runs, args.steps)
        size = (args.width, args.height)
        shots = [
            (["quickstart"], "custom_scalars", "quickstart_custom_scalars.png", size),
            (["quickstart"], "scalars", "quickstart_scalars.png", size),
            (["toy_ring8"], "custom_scalars", "toy_custom_scalars.png", size),
            (
                ["quickstart", "toy_ring8"],
                "hparams",
                "hparams.png",
                (args.hparams_width, args.hparams_height),
            ),
        ]
        for i, (names, tab, png, (w, h)) in enumerate(shots):
            logdir = logdir_of(runs, names, Path(tmp) / f"logdir{i}")
            with TensorBoard(logdir, names) as tb:
                out = args.out / png
                screenshot(args.chromium, f"{tb.url}#{tab}", out, w, h, args.timeout, args.quiet)
                print(
                    f"{out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}"
                    f"  {tab} of {', '.join(names)}  {os.path.getsize(out) // 1024} KiB"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
