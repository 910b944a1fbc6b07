"""A training split streamed from shards: batches decoded in torch DataLoader workers, in a deterministic order.

Sample i of the split is record `records[i]` of the shards' train split. An epoch's order is a pure function of
(seed, epoch): `global` is the in-memory engine's order (torch.randperm seeded by seed·1,000,003 + epoch, so a
stream and an in-memory dataset train on the same batches); `shards` permutes the shards, then the samples
inside each shard, so consecutive batches read one shard at a time (the order for a dataset much larger than
the local cache). Batch b of an epoch is samples order[b·B : (b+1)·B]: any batch can be made alone, so a stream
starts an epoch at any batch (`start`), and a pass whose decoding worker dies goes on with a new one from the
first batch the trainer has not had: no sample is skipped or seen twice.

Workers return uint8 images; the batch is normalised on the training device, and the training views (random
crop and flip, keyed by (seed, epoch, sample index)) are applied by the engine as for in-memory datasets, so a
cached teacher's outputs and a live teacher see the same views.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data._utils import signal_handling

from .files import DatasetCorrupt
from .imagefolder import decode_bytes
from .shard_cache import ShardSource
from .shard_format import SplitInfo

ORDERS = ("global", "shards")
_OPEN_SHARDS = 16  # memory-mapped shard tables a worker keeps open
_RETRIES = 3  # worker deaths a pass survives
log = logging.getLogger("kdbench.data")


def _worker_died(e: BaseException) -> bool:
    """A DataLoader failure that is a worker's death (its results lost in transit), not a decoding error."""
    return isinstance(e, ConnectionError | EOFError) or "DataLoader worker" in str(e)


def epoch_order(n: int, seed: int, epoch: int, mode: str, offsets: np.ndarray | None = None) -> torch.Tensor:
    """(n,) the epoch's sample order. `offsets`: (S + 1,) the first sample of each shard block (mode `shards`)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if mode == "global":
        return torch.randperm(n, generator=g)  # engine/data.py's order, draw for draw
    parts = [int(offsets[s]) + torch.randperm(int(offsets[s + 1] - offsets[s]), generator=g)
             for s in torch.randperm(len(offsets) - 1, generator=g).tolist()]
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64)


class BatchReader(Dataset):
    """Map-style dataset whose items are whole batches, keyed (seed, epoch, batch size, batch number)."""

    def __init__(self, source: ShardSource, split: SplitInfo, records: np.ndarray, labels: np.ndarray,
                 encoding: str, shape: tuple[int, ...], image_size: int, order: str) -> None:
        self.source, self.split, self.records, self.labels = source, split, records, labels
        self.encoding, self.shape, self.image_size, self.order = encoding, tuple(shape), image_size, order
        self.offsets = split.offsets()
        self._shard_of = np.searchsorted(self.offsets, records, side="right") - 1  # (n,) each sample's shard
        # Mode `shards`: sample blocks follow the shards (records are sorted, so each shard is one block).
        self.blocks = np.concatenate([[0], np.cumsum(np.bincount(self._shard_of, minlength=len(split.shards)))])
        self._tables: OrderedDict[int, object] = OrderedDict()
        self._order_key, self._order = None, None

    def __getstate__(self):
        return {**self.__dict__, "_tables": OrderedDict(), "_order_key": None, "_order": None}

    def __len__(self) -> int:
        return len(self.records)

    def order_of(self, seed: int, epoch: int) -> torch.Tensor:
        if self._order_key != (seed, epoch):
            self._order = epoch_order(len(self.records), seed, epoch, self.order, self.blocks)
            self._order_key = (seed, epoch)
        return self._order

    def __getitem__(self, key: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seed, epoch, batch_size, b = key
        if seed is None:  # in index order (evaluation, a teacher's plain views)
            idx = torch.arange(b * batch_size, min((b + 1) * batch_size, len(self.records)))
        else:
            idx = self.order_of(seed, epoch)[b * batch_size:(b + 1) * batch_size]
        # numpy arrays, pickled through the worker's pipe: a tensor would be shared by file descriptor, which the
        # receiver must fetch from the worker's sharer thread, a round trip that waits for the busy worker's GIL.
        idx = idx.numpy()
        return self.decode(idx), self.labels[idx], idx

    def decode(self, idx: np.ndarray) -> np.ndarray:
        """(B, C, S, S) uint8 images of samples `idx`, read shard by shard."""
        out = np.empty((len(idx), *self.shape), np.uint8)
        rec, shard = self.records[idx], self._shard_of[idx]
        for s in np.unique(shard):
            at = np.flatnonzero(shard == s)
            table = self._table(int(s))
            rows = rec[at] - self.offsets[s]
            images = table.column("image").take(rows).to_pylist()
            if self.encoding == "raw":  # one copy of the batch's pixels, no per-image step
                out[at] = self._raw(b"".join(images), len(at), int(s))
                continue
            for i, data in zip(at, images, strict=True):
                out[i] = decode_bytes(data, self.image_size, self._where(int(s)))
        return out

    def _where(self, shard: int) -> str:
        return f"{self.source.root.rstrip('/')}/{self.split.shards[shard].file}"

    def _raw(self, data: bytes, n: int, shard: int) -> np.ndarray:
        if len(data) != n * int(np.prod(self.shape)):
            raise DatasetCorrupt(f"{self._where(shard)}: records of {len(data)} bytes in all, not {n} of the "
                                 f"manifest's shape {self.shape}")
        return np.frombuffer(data, np.uint8).reshape(n, *self.shape)

    def _table(self, s: int):
        if s in self._tables:
            self._tables.move_to_end(s)
            return self._tables[s]
        table = pq.read_table(self.source.local(self.split.shards[s]), memory_map=True)
        self._tables[s] = table
        if len(self._tables) > _OPEN_SHARDS:
            self._tables.popitem(last=False)
        return table


class _Keys(Sampler):
    """The batch keys of one pass; set before each pass (the DataLoader's workers persist across passes)."""

    def __init__(self) -> None:
        self.keys: list[tuple] = []

    def __iter__(self):
        return iter(list(self.keys))

    def __len__(self) -> int:
        return len(self.keys)


def _as_is(batch):
    return batch  # a reader's item is already a batch (numpy arrays, converted in the training process)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # a worker decodes; the trainer's threads do the maths


class StreamSplit:
    """A split read from shards: the training loop takes its batches from `batches` (engine/data.py), evaluation in
    index order (`tasks.base.split_batches`); only the labels are held."""

    def __init__(self, reader: BatchReader, mean, std, workers: int, device: torch.device | str = "cpu") -> None:
        self.reader, self.workers, self.device = reader, workers, torch.device(device)
        self.mean, self.std = tuple(mean), tuple(std)
        self.y = torch.from_numpy(reader.labels).to(self.device)  # (N,) labels: small, held in memory
        self._loader: DataLoader | None = None
        self._keys = _Keys()
        self.restarts = 0  # decoding workers replaced after dying

    def __len__(self) -> int:
        return len(self.reader)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.reader.shape

    def to(self, device) -> StreamSplit:
        return StreamSplit(self.reader, self.mean, self.std, self.workers, device)

    def _pass(self, keys: list[tuple]) -> Iterator:
        """An iterator over the batches `keys`, on the persistent workers (started on the first pass)."""
        self._keys.keys = keys
        if self._loader is None:
            extra = {"persistent_workers": True, "prefetch_factor": 4, "worker_init_fn": _worker_init,
                     "multiprocessing_context": "fork"} if self.workers else {}
            # Its own generator: a DataLoader draws a seed per pass, which must not move the job's global RNG
            # (dropout, initialisation) away from an in-memory dataset's.
            self._loader = DataLoader(self.reader, batch_size=None, sampler=self._keys, num_workers=self.workers,
                                      collate_fn=_as_is, generator=torch.Generator().manual_seed(0), **extra)
        it = iter(self._loader)
        if getattr(it, "_worker_pids_set", False):
            # torch's SIGCHLD handler would raise a worker's death wherever the main thread happens to be (in the
            # middle of a training step); unregistered, the death surfaces here, from the loader's own liveness
            # check (within its 5 s status interval), where the pass can go on with new workers.
            signal_handling._remove_worker_pids(id(it))
            it._worker_pids_set = False
        return it

    def batches(self, batch_size: int, seed: int | None, epoch: int = 0,
                start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(x, y, index) batches of the epoch's order from batch `start` on (seed None: index order), on the
        split's device, x normalised float32. A decoding worker that dies (killed, out of memory) is replaced
        and the pass goes on from the first batch not yet given, up to `_RETRIES` times a pass."""
        n_batches = -(-len(self) // batch_size)
        mean = torch.tensor(self.mean, device=self.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(-1, 1, 1)
        b, failures = start, 0
        while b < n_batches:
            try:
                for x, y, idx in self._pass([(seed, epoch, batch_size, k) for k in range(b, n_batches)]):
                    x = torch.from_numpy(x).to(self.device).float().div_(255).sub_(mean).div_(std)
                    b += 1
                    yield x, torch.from_numpy(y).to(self.device), torch.from_numpy(idx).to(self.device)
            except (RuntimeError, ConnectionError, EOFError) as e:
                self._drop_loader()  # its workers may be dead or mid-pass: the next pass starts new ones
                failures += 1
                if not self.workers or failures > _RETRIES or not _worker_died(e):
                    raise
                self.restarts += 1
                log.warning("a shard-decoding worker died (%s); resuming the pass at batch %d", e, b)
            except BaseException:  # the consumer stopped (an error in training, an interrupt)
                self._drop_loader()
                raise

    def _drop_loader(self) -> None:
        it = getattr(self._loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()  # unregisters the workers from torch's SIGCHLD check, joins the live ones
        self._loader = None
