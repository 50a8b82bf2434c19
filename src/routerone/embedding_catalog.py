"""Embedding models as data (`providers/data/embeddings.toml`), on the chat catalog's vendors.

Each row becomes an `EmbeddingModel` around a `ModelInfo` (input price only, `context_window` =
the per-input token limit) whose one deployment is on the row's provider; a model is served when
that vendor is configured. Only OpenAI-compatible and Gemini vendors can serve embeddings.
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
    return out
