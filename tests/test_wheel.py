"""The wheel carries the dashboard (issue 14).

Built from a clean copy of the repository (tracked files only: no
``static/vendor/``, no ``node_modules/``) the way a user builds it, the wheel
must contain htmx and uPlot; installed into a fresh virtual environment on a
PATH without npm, its ``voicewatch serve`` must serve an overview page on
which Chromium finds ``window.htmx`` and ``window.uPlot``. Without npm and
without the files, the build fails loudly; without the files, the server
refuses to start with one line.

Kept lean: one build (``pip wheel --no-deps``), and the fresh venv borrows
the test environment's dependencies through a ``.pth`` path line (which adds
the directory only: the test venv's editable voicewatch is not picked up), so
only the built wheel itself is installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import STAFF_EMAIL, STAFF_PASSWORD

ROOT = Path(__file__).resolve().parent.parent
VENDOR_IN_WHEEL = {
    "voicewatch/web/static/vendor/htmx.min.js",
    "voicewatch/web/static/vendor/sse.min.js",
    "voicewatch/web/static/vendor/uPlot.iife.min.js",
    "voicewatch/web/static/vendor/uPlot.min.css",
}


def _clean_copy(dest: Path) -> Path:
    """The repository's tracked files as a fresh clone has them (no build output)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    assert not (dest / "src/voicewatch/web/static/vendor").exists()
    return dest


def _path_without_npm(*first: Path) -> str:
    dirs = [str(p) for p in first]
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and not (Path(entry) / "npm").exists() and not (Path(entry) / "node").exists():
            dirs.append(entry)
    path = os.pathsep.join(dirs)
    assert shutil.which("npm", path=path) is None
    return path


def _pip_wheel(source: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a clean copy; its build step runs npm ci + copy."""
    if shutil.which("npm") is None:
        pytest.fail("npm is needed to build the wheel (make test has it: make assets)")
    base = tmp_path_factory.mktemp("wheel")
    source = _clean_copy(base / "src")
    done = _pip_wheel(source, base / "dist", dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = (base / "dist").glob("voicewatch-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the built wheel installed (dependencies borrowed, see the docstring)."""
    home = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True)
    python = home / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    ours = sysconfig.get_paths()["purelib"]
    Path(purelib, "borrowed_dependencies.pth").write_text(ours + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    done = subprocess.run(
        [*install, "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    where = subprocess.run(
        [str(python), "-c", "import voicewatch; print(voicewatch.__file__)"],
        capture_output=True, text=True, check=True, cwd=home,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(purelib), where  # the installed wheel, not the checkout
    return home


def test_the_wheel_holds_the_front_end_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert names >= VENDOR_IN_WHEEL
    with zipfile.ZipFile(wheel) as zf:
        assert b"htmx" in zf.read("voicewatch/web/static/vendor/htmx.min.js")[:4000]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(venv: Path, tmp_path: Path) -> Iterator[str]:
    """``voicewatch serve`` from the fresh venv, on a PATH without npm or node."""
    env = {**os.environ, "PATH": _path_without_npm(venv / "bin")}
    env.pop("PYTHONPATH", None)
    db = f"sqlite:///{tmp_path / 'wheel.db'}"
    cli = str(venv / "bin" / "voicewatch")
    subprocess.run(
        [cli, "--db", db, "create-staff", STAFF_EMAIL, "--password", STAFF_PASSWORD],
        check=True, env=env, cwd=tmp_path, capture_output=True,
    )  # fmt: skip
    port = _free_port()
    server = subprocess.Popen(
        [cli, "--db", db, "serve", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the installed server did not start"
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_installed_wheel_serves_the_overview_with_its_scripts(
    served: str, browser: object
) -> None:
    """htmx on the overview; uPlot where the charts are (the overview draws none: /metrics)."""
    context = browser.new_context()  # type: ignore[attr-defined]
    missing: list[str] = []
    try:
        page = context.new_page()
        page.on("response", lambda r: r.status >= 400 and missing.append(f"{r.status} {r.url}"))
        page.goto(f"{served}/login")
        page.fill("input[name=email]", STAFF_EMAIL)
        page.fill("input[name=password]", STAFF_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        page.goto(f"{served}/")
        page.wait_for_load_state("load")
        assert page.url.rstrip("/") == served
        assert page.evaluate("typeof window.htmx") == "object"
        assert page.evaluate("typeof window.htmx.version") == "string"
        page.goto(f"{served}/metrics")
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.htmx") == "object"
        assert page.evaluate("typeof window.uPlot") == "function"
        assert not [m for m in missing if "/static/" in m], missing
    finally:
        context.close()


def test_the_server_refuses_to_start_without_its_scripts(venv: Path, tmp_path: Path) -> None:
    python = venv / "bin" / "python"
    vendor = subprocess.run(
        [str(python), "-c",
         "from voicewatch.web.templating import STATIC_DIR; print(STATIC_DIR / 'vendor')"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.strip()  # fmt: skip
    htmx = Path(vendor) / "htmx.min.js"
    saved = htmx.read_bytes()
    htmx.unlink()
    try:
        env = {**os.environ, "PATH": _path_without_npm(venv / "bin")}
        done = subprocess.run(
            [str(venv / "bin" / "voicewatch"), "--db", f"sqlite:///{tmp_path / 'x.db'}",
             "serve", "--port", str(_free_port())],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
        )  # fmt: skip
    finally:
        htmx.write_bytes(saved)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: the dashboard's front-end files are missing")
    assert "htmx.min.js" in lines[0] and "make assets" in lines[0]


def test_building_without_npm_or_the_files_fails_loudly(tmp_path: Path) -> None:
    """The wheel's build step itself (setup.py build_py, as pip runs it), without npm."""
    source = _clean_copy(tmp_path / "src")
    env = {**os.environ, "PATH": _path_without_npm(Path(sys.executable).parent)}
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py"],
        capture_output=True, text=True, env=env, cwd=source, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "cannot build voicewatch without its dashboard files" in done.stderr
    assert "npm is not on PATH" in done.stderr
    assert not list(source.glob("build/lib/voicewatch/web/static/vendor/*"))
