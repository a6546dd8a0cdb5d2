"""Run a PyTorch model over a DataLoader and log what blindspots needs.

    from blindspots.torch_capture import log_model_predictions
    run = client.create_run("resnet18-eval", class_names=names, embedding_dim=512)
    log_model_predictions(run, model, test_loader)            # test set: labels required
    pool = client.create_pool("unlabeled", embedding_dim=512, num_classes=len(names))
    log_model_predictions(pool, model, pool_loader)           # pool: labels ignored

Needs torch (``pip install 'blindspots[torch]'``); torchvision is not needed.

The embedding is captured with a forward hook. By default it is the input of
the model's last ``nn.Linear`` (the penultimate features: 512-d for a
torchvision resnet18); ``layer="name"`` captures that module's output
instead, flattened to N x D. Probabilities are the softmax of the model's
output (a tuple output uses its first element, a dict output its "logits").

Batch format contract — each batch the loader yields is one of:

* a dict with ``"inputs"`` (also accepted: "input", "image", "images", "x"),
  ``"labels"`` ("label", "target", "targets", "y"; required for runs),
  and optionally ``"ids"`` ("id", "sample_id", "sample_ids"), ``"uris"``
  ("uri", "path", "paths") and ``"metadata"`` (a dict of column -> values,
  as the default collate makes of a per-sample dict, or a DataFrame);
* a tuple or list ``(inputs, labels)`` or ``(inputs, labels, ids)``;
* a bare tensor of inputs (pools).

``inputs`` may itself be a tensor, or a tuple/list/dict of tensors passed to
the model as positional/keyword arguments. Rows without ids get
``f"{id_prefix}{i}"`` by position in the loader, which is only stable when the
loader does not shuffle. ``batch_fn`` adapts any other format to a dict.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import numpy as np
import pandas as pd
import torch
from torch import nn

from .client import IngestSummary, Pool, Run

INPUT_KEYS = ("inputs", "input", "image", "images", "x")
LABEL_KEYS = ("labels", "label", "target", "targets", "y")
ID_KEYS = ("ids", "id", "sample_id", "sample_ids")
URI_KEYS = ("uris", "uri", "path", "paths")


@dataclass
class Captured:
    """What one pass of a model over a loader produced, one row per sample."""

    sample_ids: list[str]
    labels: Optional[np.ndarray]          # int64; None when no batch had labels
    probabilities: np.ndarray             # float32 N x C
    embeddings: np.ndarray                # float32 N x D
    uris: Optional[list[str]]
    metadata: Optional[pd.DataFrame]

    def __len__(self) -> int:
        return len(self.sample_ids)


def penultimate_layer(model: nn.Module) -> str:
    """The name of the model's last ``nn.Linear``: its input is the default embedding."""
    name = None
    for n, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name = n
    if name is None:
        raise ValueError("the model has no nn.Linear layer: pass layer='<module name>' to capture "
                         "that module's output as the embedding")
    return name


def capture(model: nn.Module, loader: Iterable, *, layer: Union[str, nn.Module, None] = None,
            device: Union[str, torch.device, None] = None, id_prefix: str = "",
            batch_fn: Optional[Callable[[Any], Mapping]] = None, output_fn: Optional[Callable] = None,
            max_batches: Optional[int] = None) -> Captured:
    """Run ``model`` (in eval mode, without gradients) over ``loader``; returns the
    probabilities, embeddings, ids, labels, URIs and metadata of every row."""
    chunks = list(iter_captured(model, loader, layer=layer, device=device, id_prefix=id_prefix,
                                batch_fn=batch_fn, output_fn=output_fn, max_batches=max_batches,
                                chunk_rows=None))
    if not chunks:
        raise ValueError("the loader yielded no batches")
    return chunks[0]


def log_model_predictions(target: Union[Run, Pool], model: nn.Module, loader: Iterable, *,
                          layer: Union[str, nn.Module, None] = None,
                          device: Union[str, torch.device, None] = None, id_prefix: str = "",
                          batch_fn: Optional[Callable[[Any], Mapping]] = None,
                          output_fn: Optional[Callable] = None, chunk_rows: int = 8192,
                          max_batches: Optional[int] = None,
                          with_probabilities: Optional[bool] = None) -> IngestSummary:
    """Run ``model`` over ``loader`` and stream its predictions to a run (test set,
    labels required) or a pool, ``chunk_rows`` rows at a time; returns the
    ingest totals. For pools, probabilities are sent when the pool was created
    with ``num_classes`` (override with ``with_probabilities``)."""
    if not isinstance(target, (Run, Pool)):
        raise TypeError(f"target must be a blindspots Run or Pool, got {type(target).__name__}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    is_run = isinstance(target, Run)
    expected_dim = target.message.embedding_dim
    if with_probabilities is None:
        with_probabilities = is_run or target.message.num_classes > 0
    totals = [0, 0, 0, 0, 0, 0]
    for chunk in iter_captured(model, loader, layer=layer, device=device, id_prefix=id_prefix,
                               batch_fn=batch_fn, output_fn=output_fn, max_batches=max_batches,
                               chunk_rows=chunk_rows):
        if chunk.embeddings.shape[1] != expected_dim:
            raise ValueError(f"the captured embedding has {chunk.embeddings.shape[1]} dimensions but "
                             f"{type(target).__name__.lower()} {target.id!r} expects {expected_dim}: create it "
                             f"with embedding_dim={chunk.embeddings.shape[1]} or pick another layer")
        if is_run:
            if chunk.labels is None:
                raise ValueError("a run needs labels: the batches carry none (see the batch format contract "
                                 "in blindspots.torch_capture)")
            s = target.log_predictions(chunk.sample_ids, chunk.embeddings, labels=chunk.labels,
                                       probabilities=chunk.probabilities,
                                       metadata=chunk.metadata, uris=chunk.uris, progress=False)
        else:
            s = target.add(chunk.sample_ids, chunk.embeddings,
                           probabilities=chunk.probabilities if with_probabilities else None,
                           metadata=chunk.metadata, uris=chunk.uris, progress=False)
        for i, v in enumerate((s.rows_received, s.rows_stored, s.batches, s.duplicate_batches)):
            totals[i] += v
        totals[4] = s.total_rows
        totals[5] += s.rows_already_stored
    return IngestSummary(*totals)


def iter_captured(model: nn.Module, loader: Iterable, *, layer: Union[str, nn.Module, None] = None,
                  device: Union[str, torch.device, None] = None, id_prefix: str = "",
                  batch_fn: Optional[Callable[[Any], Mapping]] = None, output_fn: Optional[Callable] = None,
                  max_batches: Optional[int] = None, chunk_rows: Optional[int] = 8192) -> Iterable[Captured]:
    """Yield Captured chunks of about ``chunk_rows`` rows (None: one chunk)."""
    module, take_input = _hooked_module(model, layer)
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    grabbed: list[torch.Tensor] = []

    def hook(_module, args, output):
        value = args[0] if take_input else output
        if isinstance(value, (tuple, list)):
            value = value[0]
        grabbed.append(value.detach())

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    buffer: list[dict] = []
    rows = 0
    position = 0
    try:
        with torch.inference_mode():
            for b, raw in enumerate(loader):
                if max_batches is not None and b >= max_batches:
                    break
                batch = _parse_batch(batch_fn(raw) if batch_fn is not None else raw)
                grabbed.clear()
                output = _call(model, _to_device(batch["inputs"], device))
                if not grabbed:
                    raise RuntimeError(f"the hooked layer {layer or '(last nn.Linear)'} did not run in forward()")
                logits = _logits(output_fn(output) if output_fn is not None else output)
                emb = grabbed[-1].float().reshape(logits.shape[0], -1)
                n = logits.shape[0]
                part = {"probabilities": torch.softmax(logits.float(), dim=1).cpu().numpy(),
                        "embeddings": emb.cpu().numpy(),
                        "ids": _ids(batch.get("ids"), n, id_prefix, position),
                        "labels": _column(batch.get("labels"), n, "labels"),
                        "uris": _strings(batch.get("uris"), n, "uris"),
                        "metadata": _metadata(batch.get("metadata"), n)}
                position += n
                buffer.append(part)
                rows += n
                if chunk_rows is not None and rows >= chunk_rows:
                    yield _assemble(buffer)
                    buffer, rows = [], 0
        if buffer:
            yield _assemble(buffer)
    finally:
        handle.remove()
        model.train(was_training)


# ---------------------------------------------------------------- internals
def _hooked_module(model: nn.Module, layer: Union[str, nn.Module, None]) -> tuple[nn.Module, bool]:
    """The module to hook and whether to take its input (default) or its output (named layer)."""
    if isinstance(layer, nn.Module):
        return layer, False
    if layer is None:
        return model.get_submodule(penultimate_layer(model)), True
    modules = dict(model.named_modules())
    if layer not in modules:
        names = [n for n in modules if n][:12]
        raise ValueError(f"layer {layer!r} is not a module of the model; some names: {', '.join(names)}")
    return modules[layer], False


def _first(batch: Mapping, keys: tuple[str, ...]):
    for k in keys:
        if k in batch:
            return batch[k]
    return None


def _parse_batch(raw: Any) -> dict:
    if isinstance(raw, Mapping):
        inputs = _first(raw, INPUT_KEYS)
        if inputs is None:
            raise ValueError(f"a dict batch needs one of the keys {INPUT_KEYS}; it has {sorted(raw)}")
        return {"inputs": inputs, "labels": _first(raw, LABEL_KEYS), "ids": _first(raw, ID_KEYS),
                "uris": _first(raw, URI_KEYS), "metadata": raw.get("metadata")}
    if isinstance(raw, torch.Tensor):
        return {"inputs": raw}
    if isinstance(raw, (tuple, list)) and 2 <= len(raw) <= 3:
        return {"inputs": raw[0], "labels": raw[1], "ids": raw[2] if len(raw) == 3 else None}
    raise ValueError("a batch must be a dict, a tensor, or a tuple (inputs, labels[, ids]); got "
                     f"{type(raw).__name__}" + (f" of length {len(raw)}" if isinstance(raw, (tuple, list)) else "")
                     + ": pass batch_fn= to adapt it")


def _to_device(inputs, device):
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, Mapping):
        return {k: _to_device(v, device) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(_to_device(v, device) for v in inputs)
    return inputs


def _call(model: nn.Module, inputs):
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _logits(output) -> torch.Tensor:
    if isinstance(output, Mapping):
        output = output["logits"] if "logits" in output else next(iter(output.values()))
    elif isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        raise ValueError("the model's output must be (or start with) an N x C tensor of class scores; "
                         "pass output_fn= to pick it")
    return output


def _as_list(values) -> list:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().reshape(-1).tolist()
    if isinstance(values, np.ndarray):
        return values.reshape(-1).tolist()
    return list(values)


def _column(values, n: int, name: str) -> Optional[np.ndarray]:
    if values is None:
        return None
    out = np.asarray(_as_list(values), dtype=np.int64)
    if len(out) != n:
        raise ValueError(f"batch {name} has {len(out)} values but the model returned {n} rows")
    return out


def _strings(values, n: int, name: str) -> Optional[list[str]]:
    if values is None:
        return None
    out = [str(v) for v in _as_list(values)]
    if len(out) != n:
        raise ValueError(f"batch {name} has {len(out)} values but the model returned {n} rows")
    return out


def _ids(values, n: int, prefix: str, start: int) -> list[str]:
    if values is None:
        return [f"{prefix}{start + i}" for i in range(n)]
    return [f"{prefix}{v}" for v in _strings(values, n, "ids")]


def _metadata(values, n: int) -> Optional[pd.DataFrame]:
    if values is None:
        return None
    if isinstance(values, pd.DataFrame):
        frame = values.reset_index(drop=True)
    elif isinstance(values, Mapping):
        frame = pd.DataFrame({str(k): _as_list(v) for k, v in values.items()})
    else:
        raise ValueError(f"batch metadata must be a dict of columns or a DataFrame, got {type(values).__name__}")
    if len(frame) != n:
        raise ValueError(f"batch metadata has {len(frame)} rows but the model returned {n} rows")
    return frame


def _assemble(parts: list[dict]) -> Captured:
    def optional(key, join):
        present = [p[key] is not None for p in parts]
        if not any(present):
            return None
        if not all(present):
            raise ValueError(f"some batches carry {key} and some do not")
        return join([p[key] for p in parts])

    return Captured(
        sample_ids=[s for p in parts for s in p["ids"]],
        labels=optional("labels", np.concatenate),
        probabilities=np.concatenate([p["probabilities"] for p in parts]).astype(np.float32, copy=False),
        embeddings=np.concatenate([p["embeddings"] for p in parts]).astype(np.float32, copy=False),
        uris=optional("uris", lambda xs: [u for x in xs for u in x]),
        metadata=optional("metadata", lambda xs: pd.concat(xs, ignore_index=True)))
