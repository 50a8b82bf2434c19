"""The readers behind `routerone.settings`: config and secret files, `{"$env"}`/`{"$file"}` secrets,
string-to-type coercion of file and environment values, and URL checks. Every error is a SettingsError
that names the key; a secret's value is never printed.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import re
import stat
import tomllib
from dataclasses import field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from .yaml_config import yaml_without_repeats

__all__ = ["SettingsError", "MAX_FILE_BYTES", "read_text_file", "unique_keys"]


class SettingsError(ValueError):
    pass


def _f(default: Any, doc: str, **kw: Any) -> Any:
    if callable(default) and not isinstance(default, (int, float, str, bool)):
        return field(default_factory=default, metadata={"doc": doc, **kw})
    return field(default=default, metadata={"doc": doc, **kw})



MAX_FILE_BYTES = 64 * 1024 * 1024     # a config, catalog or secret file: far above any real one


def read_text_file(path: str) -> str:
    """A config, catalog or secret file as UTF-8 text, read up to MAX_FILE_BYTES: a file without an
    end (/dev/zero) was read until memory ran out. Larger is an OSError (EFBIG), as unreadable is;
    so is a file that is not a regular one (a FIFO blocked start-up for ever, waiting for a writer;
    a directory, a device such as /dev/tty): opened without blocking, and looked at before reading."""
    if "\x00" in path:                  # open() raises ValueError on it
        raise OSError(errno.EINVAL, "a path with a NUL byte", path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file ({_file_kind(mode)})", path)
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_FILE_BYTES // 2**20} MiB", path)
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")   # newlines as read_text() reads them


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


def _resolve_secret(value: Any, key: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict) and len(value) == 1 and ("$env" in value or "$file" in value):
        (kind, where), = value.items()
        if not isinstance(where, str) or not where or "\x00" in where:
            what = "an environment variable name" if kind == "$env" else "a file path"
            raise SettingsError(f"{key}: {kind} must be {what} (a non-empty string), got {where!r}")
        if kind == "$env":
            if where not in env:
                raise SettingsError(f"{key}: environment variable {where!r} is not set")
            return env[where]
        try:
            return read_text_file(where).strip()
        except OSError as exc:
            raise SettingsError(f"{key}: cannot read secret file {where!r}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SettingsError(f"{key}: secret file {where!r} is not UTF-8 text") from None
    return value


def _type_of(f: dataclasses.Field) -> str:
    return str(f.type).replace(" | None", "").split("[")[0]


def _coerce(key: str, raw: Any, target: str) -> Any:
    if raw is None:
        return None
    try:
        if target == "bool":
            if isinstance(raw, bool):
                return raw
            s = str(raw).strip().lower()
            if s in {"1", "true", "yes", "on"}:
                return True
            if s in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if target in ("int", "float") and isinstance(raw, str) and not raw.isascii():
            raise ValueError(raw)        # int() and float() read other scripts' digits ("\uff18\uff10" = 80)
        if target == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if target == "float":
            if isinstance(raw, bool):
                raise ValueError(raw)
            v = float(raw)
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return v
        if target == "tuple":
            items = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
                raise ValueError(raw)
            return tuple(i.strip() for i in items if i.strip())
        if target == "Mapping":
            if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
                raise ValueError(raw)
            return {str(k): v for k, v in raw.items()}
        if isinstance(raw, (dict, list)):
            raise ValueError(raw)
        return str(raw)
    except (TypeError, ValueError):
        want = {"tuple": "a list of strings", "Mapping": "a table of strings"}.get(target, target)
        # a secret of the wrong type (a list, a table) is named by its type: its value is never printed
        got = f"a {type(raw).__name__}" if key.rsplit(".", 1)[-1] in _SECRET_KEYS else repr(raw)
        if len(got) > 120:               # `port = "<1 MB>"` was a 1 MB error line
            got = f"{got[:100]}... (a {type(raw).__name__} of {len(raw):,} {'characters' if isinstance(raw, str) else 'items'})"
        raise SettingsError(f"{key}: expected {want}, got {got}") from None


_SECRET_KEYS = {"admin_key", "api_key", "headers", "database_url", "redis_url"}



def _read_file(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        text = read_text_file(path)
    except OSError as exc:
        raise SettingsError(f"config file {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"config file {path!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                            f"at offset {exc.start})") from None
    try:
        if p.suffix in {".yaml", ".yml"}:
            data = yaml_without_repeats(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # noqa: BLE001 - parser errors vary by library; report them by file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SettingsError(f"config file {path!r} is not valid: {first}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path!r}: top level must be a table/mapping")
    return data


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object_pairs_hook: a key given twice is an error, not the last one silently (TOML
    already refuses it)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k!r} is given twice")
        out[k] = v
    return out


def _without_password(url: str) -> str:
    """A URL as an error message may show it: a password in it masked."""
    return re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", url)


def _check_url(key: str, url: str, schemes: tuple[str, ...]) -> None:
    shown = _without_password(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SettingsError(f"{key}: {shown!r} is not a valid URL ({_without_password(str(exc))})") from None
    if parts.scheme not in schemes or (parts.scheme in ("http", "https", "redis", "rediss") and not parts.hostname):
        raise SettingsError(f"{key}: {shown!r} is not a valid URL (expected {' or '.join(s + '://' for s in schemes)}...)")
    if parts.scheme == "sqlite" and (not url.startswith("sqlite:///") or len(url) == len("sqlite:///")):
        raise SettingsError(f"{key}: {shown!r} names no SQLite file (expected sqlite:///path.db, or "
                            "sqlite:////absolute/path.db)")

