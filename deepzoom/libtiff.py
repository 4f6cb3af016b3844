"""libtiff's error and warning messages, caught instead of printed.

libtiff's default handlers write each message (``LZWDecode: Using code not yet in table.``,
``TIFFReadDirectoryCheckOrder: Warning, Invalid TIFF directory...``) straight to the process's stderr:
extra lines that break the one-line error of ``python -m deepzoom`` and the one JSON line a conversion
logs. Here libtiff's error handler is replaced, once, by one that logs each message at debug level and
keeps the latest, so that a failure's one-line reason can name it; its warning handler by one that logs
each at debug level. Pillow's decoder sets the warning handler to none as it starts (so what libtiff
warns while Pillow decodes is dropped, never printed): :func:`install` puts ours back each time it is
called, for whatever else uses libtiff.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from pathlib import Path

log = logging.getLogger("deepzoom")

_MESSAGE_BYTES = 512
# void handler(const char *module, const char *fmt, va_list ap): on x86-64 and arm64 a va_list argument
# arrives as a pointer, which vsnprintf takes as it is.
_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
_installed: list[object] = []  # the handlers, kept alive for as long as libtiff may call them
_lock = threading.Lock()
_latest: list[tuple[int, str]] = []  # (sequence number, message) of the latest message
_count = 0


def install() -> None:
    """Route libtiff's errors and warnings here; cheap to call again (it puts the warning handler back, see
    above), and a no-op where libtiff is not found."""
    with _lock:
        if not _installed:
            _installed.append(_installed_handlers())
        handlers = _installed[0]
        if handlers is not None:
            library, _, on_warning = handlers
            library.TIFFSetWarningHandler(on_warning)


def _installed_handlers() -> tuple[ctypes.CDLL, object, object] | None:
    """libtiff with our error handler installed, and both handlers; None where libtiff is not found."""
    library = _loaded_libtiff()
    if library is None:
        return None
    libc = ctypes.CDLL(None)
    libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

    def formatted(module: bytes | None, fmt: bytes | None, arguments: int | None) -> str:
        buffer = ctypes.create_string_buffer(_MESSAGE_BYTES)
        if fmt:
            libc.vsnprintf(buffer, _MESSAGE_BYTES, fmt, arguments)
        text = buffer.value.decode("utf-8", "replace").strip()
        name = module.decode("utf-8", "replace") if module else ""
        return f"{name}: {text}" if name and "." not in name else text  # a codec (LZWDecode), not a file name

    def on_error(module: bytes | None, fmt: bytes | None, arguments: int | None) -> None:
        message = formatted(module, fmt, arguments)
        _remember(message)
        log.debug("libtiff: %s", message)

    def on_warning(module: bytes | None, fmt: bytes | None, arguments: int | None) -> None:
        log.debug("libtiff warning: %s", formatted(module, fmt, arguments))

    error_handler, warning_handler = _HANDLER(on_error), _HANDLER(on_warning)
    for setter in (library.TIFFSetErrorHandler, library.TIFFSetWarningHandler):
        setter.argtypes = [_HANDLER]
        setter.restype = ctypes.c_void_p
    library.TIFFSetErrorHandler(error_handler)
    return library, error_handler, warning_handler


def mark() -> int:
    """A point in libtiff's messages: :func:`latest_since` tells what came after it."""
    return _count


def latest_since(point: int) -> str | None:
    """libtiff's latest error message after ``point``, if there was one."""
    with _lock:
        if _latest and _latest[0][0] > point:
            return _latest[0][1]
    return None


def _remember(message: str) -> None:
    global _count
    with _lock:
        _count += 1
        _latest[:] = [(_count, message)]


def _loaded_libtiff() -> ctypes.CDLL | None:
    """The libtiff that Pillow's ``_imaging`` is linked to (its wheel bundles one), found among the
    libraries this process has mapped; None on systems without ``/proc``."""
    from PIL import Image  # noqa: F401 - loads _imaging, and with it libtiff

    try:
        mapped = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    for line in mapped:
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        if Path(path).name.startswith("libtiff") and ".so" in path:
            return ctypes.CDLL(path)
    return None
