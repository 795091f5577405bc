"""The CUDA 12 libraries of CTranslate2's GPU path, found without LD_LIBRARY_PATH.

The PyPI CTranslate2 wheel carries the CUDA runtime inside it, but opens cuBLAS by
its name, ``libcublas.so.12``, the first time it multiplies on a GPU. A machine whose
driver and toolkit are CUDA 13 has no such file, and the job fails there, not at
start-up. The ``gpu`` extra (``make gpu``) puts NVIDIA's CUDA 12 wheels into the
virtual environment, where the dynamic loader never looks. faster-whisper's README
has people set ``LD_LIBRARY_PATH`` instead, which a worker started by systemd, cron
or a colleague forgets. Loading the wheels' files by path with ``RTLD_GLOBAL`` before
CTranslate2 asks for them works without it: the loader hands out an object it already
holds when a later ``dlopen`` names its soname.

cuDNN 9 is handled the same way, but only where the installed CTranslate2 names it:
the 4.8.5 wheel is built without cuDNN (its Conv1D is plain CUDA since 4.6.3), so the
extra does not ship half a gigabyte nobody loads. Which libraries CTranslate2 names is
read from its binary, so a build that does need cuDNN is seen as such.

Nothing here runs at import, and a machine without any of it only gets "missing".
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.metadata
import importlib.util
import mmap
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import ModelError

DRIVER = "libcuda.so.1"
GPU_INSTALL = "`make gpu`, or pip install '.[gpu]'"


@dataclass(frozen=True)
class CudaLibrary:
    """A CUDA library CTranslate2 may open, and the NVIDIA wheel that ships it."""

    name: str  # as an operator says it
    folder: str  # the wheel's files are in nvidia/<folder>/lib
    soname: str  # the name CTranslate2 opens
    files: str  # the wheel's files to load (a glob): the library and its parts
    symbol: str  # one of its functions, to ask the loader which file it took
    wheel: str  # the NVIDIA wheel that ships it
    install: str  # what to run when it is missing


CUBLAS = CudaLibrary(
    "cuBLAS 12",
    "cublas",
    "libcublas.so.12",
    "libcublas*.so.12",  # libcublas needs libcublasLt, from the same wheel
    "cublasCreate_v2",
    "nvidia-cublas-cu12",
    GPU_INSTALL,
)
CUDNN = CudaLibrary(
    "cuDNN 9",
    "cudnn",
    "libcudnn.so.9",
    "libcudnn*.so.9",  # libcudnn opens its parts (ops, cnn, engines...) by name
    "cudnnGetVersion",
    "nvidia-cudnn-cu12",
    "pip install 'nvidia-cudnn-cu12==9.*'",
)
LIBRARIES = (CUBLAS, CUDNN)


@dataclass(frozen=True)
class Found:
    """Where a library comes from: ``wheel`` (``path``: its folder in this
    environment), ``system`` (``path``: the file the dynamic loader took), or ``""``
    when it is missing."""

    library: CudaLibrary
    source: str
    path: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.source)


def wheel_folder(library: CudaLibrary, search_path: Sequence[str] | None = None) -> Path | None:
    """The library's folder in an installed NVIDIA wheel, found as an import of
    ``nvidia`` would (a namespace package in newer wheels, a plain one in older);
    nothing is imported. ``search_path`` defaults to ``sys.path``."""
    path = list(search_path) if search_path is not None else None
    try:
        spec = importlib.machinery.PathFinder.find_spec("nvidia", path)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / library.folder / "lib"
        if (folder / library.soname).is_file():
            return folder
    return None


def load_folder(folder: Path, files: str) -> list[Path]:
    """Load the files matching ``files`` in ``folder`` globally, each by path. One
    that fails (it needs another not loaded yet) is tried again after the rest, until
    a round loads nothing more. Returns those loaded."""
    pending = sorted(folder.glob(files))
    loaded: list[Path] = []
    while pending:
        failed = []
        for path in pending:
            try:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                failed.append(path)
            else:
                loaded.append(path)
        if len(failed) == len(pending):
            break
        pending = failed
    return loaded


class _DlInfo(ctypes.Structure):
    _fields_ = (
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    )


def loaded_from(soname: str, symbol: str) -> str | None:
    """The file the dynamic loader gives for ``soname`` (one already loaded first, as
    for CTranslate2's own ``dlopen``), or None when it finds none."""
    try:
        handle = ctypes.CDLL(soname, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    return defined_in(handle, symbol) or soname


def defined_in(handle: ctypes.CDLL, symbol: str) -> str | None:
    """The path of the file that defines ``symbol`` (glibc's ``dladdr``)."""
    try:
        address = ctypes.cast(getattr(handle, symbol), ctypes.c_void_p).value
        dladdr = ctypes.CDLL(None).dladdr
    except AttributeError:
        return None
    dladdr.argtypes = (ctypes.c_void_p, ctypes.POINTER(_DlInfo))
    dladdr.restype = ctypes.c_int
    info = _DlInfo()
    if not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.fsdecode(info.dli_fname)


def locate(library: CudaLibrary, search_path: Sequence[str] | None = None) -> Found:
    """Load the library from its wheel when installed, else ask the loader (a system
    CUDA 12 install, found as CTranslate2 itself would find it). Missing, ``path`` is
    the wheel's folder when there is one whose files do not load."""
    folder = wheel_folder(library, search_path)
    if folder is not None and folder / library.soname in load_folder(folder, library.files):
        return Found(library, "wheel", str(folder))
    path = loaded_from(library.soname, library.symbol)
    if path:
        return Found(library, "system", path)
    return Found(library, "", str(folder) if folder else "")


def ctranslate2_library() -> Path | None:
    """The installed CTranslate2's shared library: in ``ctranslate2.libs`` beside the
    package for PyPI wheels, in the package folder for some builds."""
    spec = importlib.util.find_spec("ctranslate2")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    for folder in (package.parent / "ctranslate2.libs", package):
        for path in sorted(folder.glob("libctranslate2*.so*")):
            return path
    return None


@cache
def ctranslate2_names(soname: str) -> bool | None:
    """Whether the installed CTranslate2 names ``soname`` (a library it needs or
    opens at run time), or None when its binary is not where a wheel puts it."""
    library = ctranslate2_library()
    if library is None:
        return None
    try:
        with library.open("rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as data:
            return data.find(soname.encode()) >= 0
    except (OSError, ValueError):  # unreadable, or empty
        return None


def wanted() -> tuple[CudaLibrary, ...]:
    """The libraries to load for this CTranslate2's GPU path: those it names, or all
    of them when its binary is not found (loading one it never opens costs little)."""
    return tuple(lib for lib in LIBRARIES if ctranslate2_names(lib.soname) is not False)


def missing(found: Iterable[Found]) -> list[CudaLibrary]:
    """The libraries not found that this CTranslate2 is known to open: a GPU worker
    stops for these. An unknown build is not stopped on a guess."""
    return [f.library for f in found if not f.ok and ctranslate2_names(f.library.soname)]


@cache
def preload() -> tuple[Found, ...]:
    """Once per process, before CTranslate2 first works on a GPU: load the wanted
    libraries from their wheels, so that its ``dlopen`` by name finds them."""
    return tuple(locate(library) for library in wanted())


def require() -> None:
    """Stop before loading a model on a GPU when a library it will open is missing:
    a worker should say so at start-up, with the fix, not fail its first job."""
    lacking = missing(preload())
    if lacking:
        names = ", ".join(f"{lib.name} ({lib.soname})" for lib in lacking)
        raise ModelError(
            f"a CUDA GPU is here but CTranslate2 cannot decode on it: {names} missing",
            hint=f"run {lacking[0].install} on this machine; `transcribe doctor` shows more",
        )


@dataclass(frozen=True)
class Driver:
    """The NVIDIA driver's user-space library, and the newest CUDA it runs."""

    path: str | None
    cuda: str | None = None


def driver() -> Driver:
    """``libcuda.so.1`` comes with the driver, not with CUDA: without it no GPU."""
    path = loaded_from(DRIVER, "cuDriverGetVersion")
    if path is None:
        return Driver(None)
    version = ctypes.c_int()
    if ctypes.CDLL(DRIVER).cuDriverGetVersion(ctypes.byref(version)) != 0:
        return Driver(path)
    return Driver(path, f"{version.value // 1000}.{version.value % 1000 // 10}")


def wheel_version(library: CudaLibrary) -> str | None:
    """The installed NVIDIA wheel's version, for doctor."""
    try:
        return importlib.metadata.version(library.wheel)
    except importlib.metadata.PackageNotFoundError:
        return None
