"""GPU workers: finding the CUDA 12 wheels' libraries, what doctor says of a GPU
worker, and which queues a worker takes by default.

The library finder is tested on folders laid out like NVIDIA's wheels, and loading on
two tiny libraries compiled here (one needs the other, as libcublas needs
libcublasLt): that tests discovery and the loader's by-name match, not CUDA. What
needs a real GPU skips where CTranslate2 sees none.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import PROJECT
from transcribe import doctor
from transcribe.asr import cuda, engine
from transcribe.asr.engine import cuda_device_count
from transcribe.config import Config, TranscriptionConfig
from transcribe.doctor import gpu_checks
from transcribe.errors import ModelError
from transcribe.queue import default_queues
from transcribe.runners.worker import choose_queues

runner = CliRunner()
no_gpu = pytest.mark.skipif(cuda_device_count() > 0, reason="this machine has a CUDA GPU")
needs_gpu = pytest.mark.skipif(cuda_device_count() == 0, reason="no CUDA GPU on this machine")


def wheel_tree(site: Path, folder: str, *names: str, package: bool = False) -> Path:
    """``site/nvidia/<folder>/lib/<names>``, as pip unpacks nvidia-*-cu12 wheels."""
    lib = site / "nvidia" / folder / "lib"
    lib.mkdir(parents=True)
    for name in names:
        (lib / name).write_bytes(b"")
    if package:  # older wheels ship nvidia/__init__.py; newer make a namespace package
        (site / "nvidia" / "__init__.py").write_text("")
    return lib


# -- finding the wheels' folders -----------------------------------------------------------


@pytest.mark.parametrize("package", [False, True], ids=["namespace", "package"])
def test_the_wheel_folder_is_found_where_pip_puts_it(tmp_path: Path, package: bool) -> None:
    site = tmp_path / "site-packages"
    lib = wheel_tree(site, "cublas", "libcublas.so.12", "libcublasLt.so.12", package=package)
    assert cuda.wheel_folder(cuda.CUBLAS, [str(site)]) == lib
    assert cuda.wheel_folder(cuda.CUDNN, [str(site)]) is None


def test_a_namespace_spread_over_two_folders_is_searched_whole(tmp_path: Path) -> None:
    first, second = tmp_path / "user-site", tmp_path / "venv-site"
    wheel_tree(first, "cuda_runtime", "libcudart.so.12")
    lib = wheel_tree(second, "cudnn", "libcudnn.so.9", "libcudnn_ops.so.9")
    assert cuda.wheel_folder(cuda.CUDNN, [str(first), str(second)]) == lib


def test_no_wheel_no_folder_and_nothing_imported(tmp_path: Path) -> None:
    wheel_tree(tmp_path, "cublas", "libcublasLt.so.12")  # the main library is not there
    assert cuda.wheel_folder(cuda.CUBLAS, [str(tmp_path)]) is None
    assert cuda.wheel_folder(cuda.CUBLAS, [str(tmp_path / "nowhere")]) is None
    assert cuda.wheel_folder(cuda.CUBLAS, []) is None


def test_a_missing_library_is_reported_missing(tmp_path: Path) -> None:
    ghost = cuda.CudaLibrary(
        "ghost 1", "ghost", "libghost-transcribe.so.1", "libghost*.so.1", "g", "-", "-"
    )
    found = cuda.locate(ghost, [str(tmp_path)])
    assert not found.ok and found.source == "" and found.path == ""
    broken = wheel_tree(tmp_path, "ghost", "libghost-transcribe.so.1")  # not an ELF file
    found = cuda.locate(ghost, [str(tmp_path)])
    assert not found.ok and found.path == str(broken)


# -- loading: a later dlopen by name gets the wheel's file ---------------------------------


def compile_library(folder: Path, soname: str, source: str, *needs: str) -> None:
    c_file = folder / f"{soname}.c"
    c_file.write_text(source)
    linked = [f"-l:{name}" for name in needs]
    command = ["cc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(folder / soname)]
    subprocess.run([*command, str(c_file), f"-L{folder}", *linked], check=True)
    c_file.unlink()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to build test libraries")
def test_wheel_libraries_load_in_an_order_that_works_and_serve_later_lookups(
    tmp_path: Path,
) -> None:
    """``libtcuda_a`` needs ``libtcuda_z`` (no rpath): loading in name order fails first
    and succeeds on the second round. Then the loader answers a lookup by soname alone,
    as CTranslate2's ``dlopen("libcublas.so.12")``, with the file from the folder."""
    site = tmp_path / "site"
    lib = wheel_tree(site, "tcuda")
    compile_library(lib, "libtcuda_z.so.1", "int tcuda_z(void) { return 41; }\n")
    dependent = "int tcuda_z(void);\nint tcuda_a(void) { return tcuda_z() + 1; }\n"
    compile_library(lib, "libtcuda_a.so.1", dependent, "libtcuda_z.so.1")
    test_lib = cuda.CudaLibrary(
        "tcuda 1", "tcuda", "libtcuda_a.so.1", "libtcuda_*.so.1", "tcuda_a", "-", "-"
    )
    assert cuda.loaded_from("libtcuda_a.so.1", "tcuda_a") is None  # not on the loader's path

    found = cuda.locate(test_lib, [str(site)])
    assert (found.source, found.path) == ("wheel", str(lib))
    assert cuda.loaded_from("libtcuda_a.so.1", "tcuda_a") == str(lib / "libtcuda_a.so.1")


def test_system_libraries_are_found_by_the_loader() -> None:
    path = cuda.loaded_from("libm.so.6", "cos")
    assert path is not None and Path(path).name.startswith("libm")
    assert cuda.loaded_from("libnot-a-library-transcribe.so.1", "x") is None


# -- what CTranslate2 opens, and what the gpu extra brings ---------------------------------


def test_the_gpu_extra_brings_what_this_ctranslate2_opens() -> None:
    """cuBLAS 12 is named in the CTranslate2 binary; every library it names must come
    with ``pip install '.[gpu]'``, pinned."""
    if cuda.ctranslate2_library() is None:
        pytest.skip("CTranslate2 is not installed from a PyPI wheel here")
    pyproject = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    extra = pyproject["project"]["optional-dependencies"]["gpu"]
    pinned = {line.split(";")[0].split("==")[0].strip(): line for line in extra}
    assert cuda.CUBLAS in cuda.wanted()
    for library in cuda.wanted():
        assert library.wheel in pinned and "==" in pinned[library.wheel], library.name


def test_a_gpu_engine_stops_with_the_fix_when_cublas_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = (cuda.Found(cuda.CUBLAS, ""),)
    monkeypatch.setattr(cuda, "preload", lambda: found)
    monkeypatch.setattr(cuda, "ctranslate2_names", lambda soname: soname == "libcublas.so.12")
    with pytest.raises(ModelError, match=r"cuBLAS 12 \(libcublas.so.12\) missing") as raised:
        cuda.require()
    assert "make gpu" in str(raised.value) and "'.[gpu]'" in str(raised.value)
    monkeypatch.setattr(cuda, "preload", lambda: (cuda.Found(cuda.CUBLAS, "wheel", "/x"),))
    cuda.require()


# -- doctor -----------------------------------------------------------------------------


@no_gpu
def test_doctor_on_a_machine_without_gpu_says_so_and_still_passes() -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.output)}
    gpu = {name: c for name, c in checks.items() if name.startswith("gpu: ")}
    names = ("driver", "devices", "cuBLAS 12", "cuDNN 9", "worker")
    assert set(gpu) == {f"gpu: {name}" for name in names}
    assert not any(c["required"] for c in gpu.values())
    assert all(c["ok"] for c in checks.values() if c["required"])
    assert "none visible to CTranslate2" in gpu["gpu: devices"]["detail"]
    worker = gpu["gpu: worker"]
    assert not worker["ok"] and "no CUDA GPU" in worker["detail"]
    assert "takes transcribe, letters" in worker["detail"]
    if not cuda.locate(cuda.CUBLAS).ok:
        assert "missing" in gpu["gpu: cuBLAS 12"]["detail"]
        shown = runner.invoke(app, ["doctor"], env={"COLUMNS": "200"}).output
        assert "`make gpu`, or pip install '.[gpu]'" in shown  # not eaten as markup


@pytest.mark.parametrize("cublas", ["", "wheel"], ids=["cublas-missing", "cublas-found"])
def test_doctor_on_a_gpu_machine_names_what_a_worker_lacks(
    monkeypatch: pytest.MonkeyPatch, cublas: str
) -> None:
    """A GPU whose machine has only CUDA 13 libraries (the failure simulated: the GPU
    and the loader's answers), and the same machine after `make gpu`."""
    monkeypatch.setattr(engine, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(doctor, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(doctor, "_cuda_compute_types", lambda: "float16, float32, int8")
    monkeypatch.setattr(cuda, "ctranslate2_names", lambda soname: soname == "libcublas.so.12")
    monkeypatch.setattr(cuda, "locate", lambda lib, path=None: cuda.Found(lib, cublas, "/venv"))
    checks = {c.name: c for c in gpu_checks(TranscriptionConfig())}
    assert (
        checks["gpu: devices"].ok
        and "which would decode in float16" in checks["gpu: devices"].detail
    )
    assert checks["gpu: cuDNN 9"].ok and "not needed" in checks["gpu: cuDNN 9"].detail
    library, worker = checks["gpu: cuBLAS 12"], checks["gpu: worker"]
    assert library.ok == worker.ok == bool(cublas)
    if cublas:
        assert library.detail.endswith(": /venv")
        takes = "takes transcribe-gpu, transcribe, letters, decoding on cuda float16"
        assert worker.detail == f"`transcribe worker` {takes}"
    else:
        assert "/venv does not load: `make gpu`, or pip install '.[gpu]'" in library.detail
        assert worker.detail.startswith("would stop at start-up, cuBLAS 12 missing: run `make gpu`")


@needs_gpu
def test_doctor_on_a_gpu_machine_says_what_the_worker_would_use() -> None:
    checks = {c.name: c for c in gpu_checks(TranscriptionConfig())}
    assert checks["gpu: driver"].ok and checks["gpu: devices"].ok
    libraries_ok = all(cuda.locate(lib).ok for lib in cuda.wanted())
    assert checks["gpu: worker"].ok == libraries_ok
    if libraries_ok:
        assert "takes transcribe-gpu, transcribe, letters" in checks["gpu: worker"].detail


# -- the worker's default queues -----------------------------------------------------------


def test_a_worker_takes_the_gpu_queue_only_where_it_decodes_on_a_gpu() -> None:
    assert default_queues(on_gpu=True) == ("transcribe-gpu", "transcribe", "letters")
    assert default_queues(on_gpu=False) == ("transcribe", "letters")


def test_asked_queues_win_and_the_default_follows_the_machine(config: Config) -> None:
    assert choose_queues(config, ("letters", "letters")) == (("letters",), "")
    queues, why = choose_queues(config, ())
    on_gpu = cuda_device_count() > 0 and config.transcription.device != "cpu"
    assert queues == default_queues(on_gpu)
    assert why == f"the default {'with' if on_gpu else 'without'} a CUDA GPU"
