"""Embedding models as data (`providers/data/embeddings.toml`), on the chat catalog's vendors.

Each row becomes an `EmbeddingModel` around a `ModelInfo` (input price only, `context_window` =
the per-input token limit) whose one deployment is on the row's provider; a model is served when
that vendor is configured. Only OpenAI-compatible and Gemini vendors can serve embeddings.

A self-hosted server's embedders (Ollama's `nomic-embed-text:latest`, LM Studio's, llama.cpp's
`--embeddings`, SGLang's `--is-embedding`, LocalAI's) are its provider table's `embedding_models`:
served as `<model>` (unless a configured model already has that name) and `<provider>/<model>`, at the
provider's input price (keyless: 0); their length and per-input limit are the server's to enforce.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from .billing.prices import Price, price_to_micros
from .catalog import Catalog, ModelInfo
from .providers.base import Deployment
from .providers.embeddings import EMBEDDING_PROTOCOLS

__all__ = ["EmbeddingModel", "load_embedding_models"]

SERVER_INPUT_TOKENS = 1_000_000     # a self-hosted embedder's per-input limit: the server's own to enforce
SERVER_DIMENSIONS = 65_536          # `dimensions` passed on; the vectors are checked against what was asked


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    info: ModelInfo
    dimensions: int
    custom_dimensions: bool

    @property
    def configured(self) -> bool:
        return any(d.vendor.configured for d in self.info.deployments)


def load_embedding_models(catalog: Catalog) -> dict[str, EmbeddingModel]:
    text = resources.files("routerone.providers").joinpath("data").joinpath("embeddings.toml").read_text()
    out: dict[str, EmbeddingModel] = {}
    for i, raw in enumerate(tomllib.loads(text).get("embedding_model", [])):
        where = f"embeddings.toml embedding_model[{i}]"
        vendor = catalog.vendors.get(raw["provider"])
        if vendor is None or vendor.protocol not in EMBEDDING_PROTOCOLS:
            continue          # a vendor this gateway does not know, or one with no embeddings API
        price = Price(input_micros_per_mtok=price_to_micros(raw["input_usd_per_mtok"], what=f"{where}.input_usd_per_mtok"))
        dep = Deployment(raw["id"], vendor, raw.get("upstream", raw["id"]))
        info = ModelInfo(id=raw["id"], provider=vendor.name, context_window=int(raw["max_input_tokens"]),
                         max_output=0, price=price, deployments=(dep,), tools=False, json_schema=False)
        out[raw["id"]] = EmbeddingModel(info, int(raw["dimensions"]), bool(raw.get("custom_dimensions", False)))
    _add_server_embedders(catalog, out)
    return out


def _add_server_embedders(catalog: Catalog, out: dict[str, EmbeddingModel]) -> None:
    for entry in catalog.providers.values():
        if not entry.embedding_models or not entry.vendor.configured or entry.unknown_price is None:
            continue
        price = Price(input_micros_per_mtok=entry.unknown_price.input_micros_per_mtok)
        for name in entry.embedding_models:
            ids = [f"{entry.name}/{name}"]
            if name not in out or not out[name].configured:     # a configured model of that name keeps it
                ids.append(name)
            for mid in ids:
                info = ModelInfo(id=mid, provider=entry.name, context_window=SERVER_INPUT_TOKENS, max_output=0,
                                 price=price, deployments=(Deployment(mid, entry.vendor, name),), tools=False,
                                 json_schema=False)
                out[mid] = EmbeddingModel(info, SERVER_DIMENSIONS, True)
