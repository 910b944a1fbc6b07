"""Readers of the official MNIST and CIFAR files, without torchvision; nothing is downloaded.

Layouts read (under a data root):
  MNIST      <root>/MNIST/raw/ (torchvision's layout) or <root>/: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
  CIFAR-10   <root>/cifar-10-batches-py/{data_batch_1..5, test_batch}   (python version)
             <root>/cifar-10-batches-bin/{data_batch_1..5, test_batch}.bin   (binary version)
  CIFAR-100  <root>/cifar-100-python/{train, test}   (python version)
             <root>/cifar-100-binary/{train, test}.bin   (binary version)
Every reader returns (images uint8 (N, C, H, W), labels int64 (N,)).
"""

from __future__ import annotations

import gzip
import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MNIST_URL = "https://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


class DatasetMissing(FileNotFoundError):
    """The dataset's files are not where we looked; the message names the paths and where to get them."""


class DatasetCorrupt(ValueError):
    """A dataset file exists but is not in the format it should be."""


# ---- MNIST: idx files --------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (magic: two zero bytes, a type byte, the number of dimensions; big-endian int32 sizes)."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
        raise DatasetCorrupt(f"{path} is not an idx file (magic {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    body = data[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)) * dtype.itemsize:
        raise DatasetCorrupt(f"{path}: header says {shape}, but the file holds {len(body)} bytes of data")
    return np.frombuffer(body, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _mnist_file(root: Path, stem: str) -> Path:
    looked = [d / (stem + gz) for d in (root / "MNIST" / "raw", root) for gz in ("", ".gz")]
    for path in looked:
        if path.is_file():
            return path
    raise DatasetMissing(f"no MNIST file {stem}: looked for {', '.join(map(str, looked))}. "
                         f"Download train-/t10k-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz from {MNIST_URL} "
                         f"into {root / 'MNIST' / 'raw'} (or set KDBENCH_DATA_ROOT / the dataset's `root:`).")


def find_mnist(root: str | Path) -> list[Path]:
    """The four MNIST files under `root`, or DatasetMissing naming the first one absent."""
    return [_mnist_file(Path(root), f"{p}-{kind}") for p in ("train", "t10k")
            for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]


def read_mnist(root: str | Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's training (60,000) or test (10,000) images, (N, 1, 28, 28) uint8, and labels (N,) int64."""
    prefix = "train" if train else "t10k"
    images = read_idx(_mnist_file(Path(root), f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_mnist_file(Path(root), f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetCorrupt(f"MNIST {prefix}: images {images.shape} and labels {labels.shape} do not match")
    return images[:, None].astype(np.uint8), labels.astype(np.int64)


# ---- CIFAR: python (pickle) and binary versions ------------------------------------------------------------

@dataclass(frozen=True)
class CifarLayout:
    title: str
    py_dir: str
    py_files: tuple[tuple[str, ...], tuple[str, ...]]  # (train, test)
    label_key: bytes  # the pickled dicts' label key
    bin_dir: str
    bin_files: tuple[tuple[str, ...], tuple[str, ...]]
    label_bytes: int  # label bytes before each record's 3072 pixel bytes; the class is the last one


_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10 = CifarLayout("CIFAR-10", "cifar-10-batches-py", (_BATCHES, ("test_batch",)), b"labels",
                      "cifar-10-batches-bin", (tuple(f"{b}.bin" for b in _BATCHES), ("test_batch.bin",)), 1)
CIFAR100 = CifarLayout("CIFAR-100", "cifar-100-python", (("train",), ("test",)), b"fine_labels",
                       "cifar-100-binary", (("train.bin",), ("test.bin",)), 2)  # coarse byte, then fine byte

_PIXELS = 3 * 32 * 32


def find_cifar(root: str | Path, layout: CifarLayout) -> tuple[str, list[Path], list[Path]]:
    """('python' | 'binary', train files, test files): the first version present in full under `root`."""
    root = Path(root)
    for kind, folder, (train, test) in (("python", layout.py_dir, layout.py_files),
                                        ("binary", layout.bin_dir, layout.bin_files)):
        paths = [root / folder / f for f in train], [root / folder / f for f in test]
        if all(p.is_file() for p in paths[0] + paths[1]):
            return kind, *paths
    py, binary = (",".join(sum(names, ())) for names in (layout.py_files, layout.bin_files))
    raise DatasetMissing(
        f"no {layout.title} files under {root}: looked for {root / layout.py_dir}/{{{py}}} (python version) "
        f"and {root / layout.bin_dir}/{{{binary}}} (binary version). "
        f"Download the python version from {CIFAR_URL} and extract it into {root} "
        f"(or set KDBENCH_DATA_ROOT / the dataset's `root:`).")


def read_cifar(root: str | Path, layout: CifarLayout, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """The training (50,000) or test (10,000) images, (N, 3, 32, 32) uint8, and labels (N,) int64."""
    kind, train_files, test_files = find_cifar(root, layout)
    read = _read_cifar_pickle if kind == "python" else _read_cifar_bin
    parts = [read(p, layout) for p in (train_files if train else test_files)]
    x = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)  # rows are R, G, B planes of 32×32
    return x, np.concatenate([p[1] for p in parts])


def _read_cifar_bin(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(path.read_bytes(), np.uint8)
    record = layout.label_bytes + _PIXELS
    if data.size % record:
        raise DatasetCorrupt(f"{path}: {data.size} bytes is not a whole number of {record}-byte records")
    rows = data.reshape(-1, record)  # (N, label bytes + 3072)
    return rows[:, layout.label_bytes:], rows[:, layout.label_bytes - 1].astype(np.int64)


def _read_cifar_pickle(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    batch = load_pickle(path)
    try:
        x, y = np.asarray(batch[b"data"], np.uint8), np.asarray(batch[layout.label_key], np.int64)
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetCorrupt(f"{path}: not a {layout.title} batch ({type(e).__name__}: {e})") from None
    if x.ndim != 2 or x.shape[1] != _PIXELS or y.shape != (len(x),):
        raise DatasetCorrupt(f"{path}: data {x.shape} and labels {y.shape}, expected (N, {_PIXELS}) and (N,)")
    return x, y


# ---- A pickle loader that can only rebuild numpy arrays ---------------------------------------------

def _numpy_core(submodule: str, name: str):
    # NumPy 2 renamed numpy.core to numpy._core; files pickled by either name must load under both.
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {submodule}.{name}")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, 'latin1'); nothing else is allowed.
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


# (module, name) as pickled -> (submodule of numpy._core / numpy.core, name): what ndarray.__reduce_ex__ emits.
_ALLOWED = {(f"numpy.{core}.{sub}", name): (sub, name) for core in ("core", "_core")
            for sub, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))}
_BUILTINS = {"list": list, "dict": dict, "tuple": tuple, "set": set, "bytes": bytes, "bytearray": bytearray,
             "str": str, "int": int, "float": float}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists of numpy arrays; any other global (os.system, eval, …) is refused before it runs."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _numpy_core(*_ALLOWED[module, name])
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: a dataset file holds only arrays")


def load_pickle(path: Path):
    """A pickled dataset batch (e.g. CIFAR's python version), through NumpyOnlyUnpickler.

    encoding='bytes' is what the official CIFAR files (pickled by Python 2) need: their keys come back as bytes.
    """
    with open(path, "rb") as f:
        try:
            return NumpyOnlyUnpickler(f, encoding="bytes").load()
        except pickle.UnpicklingError as e:
            raise DatasetCorrupt(f"{path}: {e}") from None
        except (EOFError, ValueError, TypeError) as e:
            raise DatasetCorrupt(f"{path}: unreadable pickle ({type(e).__name__}: {e})") from None
