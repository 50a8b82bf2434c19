"""Small wire value types shared by providers, billing and the chat service."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

MAX_REPORTED_TOKENS = 1_000_000_000   # per count and request; no model comes near (1M contexts)


@dataclass(slots=True)
class Usage:
    """Token counts of one request, as the upstream reported them (or as counted locally)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0          # prompt tokens read from a cache (subset of prompt_tokens)
    cache_write_tokens: int = 0     # prompt tokens written to a cache (subset of prompt_tokens)
    reasoning_tokens: int = 0       # subset of completion_tokens
    estimated: bool = False         # True when counted locally because the upstream gave none
    # prompt_tokens / completion_tokens the upstream sent as something that is not a plausible count
    # (a string, null, a fraction, missing, a negative number, more than MAX_REPORTED_TOKENS; 0 for a
    # prompt or for output that was relayed: `implausible_zeros`): 0 here,
    # to be counted locally (`filled_from`) and flagged by billing. A negative count with text relayed
    # billed 0; an absurd one billed the whole hold: both are Router One's own count instead.
    unreadable: tuple[str, ...] = ()

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict:
        out: dict = {"prompt_tokens": self.prompt_tokens,
                     "completion_tokens": self.completion_tokens,
                     "total_tokens": self.total_tokens}
        if self.cached_tokens or self.cache_write_tokens:
            details: dict = {"cached_tokens": self.cached_tokens}
            if self.cache_write_tokens:
                details["cache_write_tokens"] = self.cache_write_tokens
            out["prompt_tokens_details"] = details
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out

    @classmethod
    def from_openai(cls, raw: dict | None) -> "Usage | None":
        if not isinstance(raw, dict):
            return None
        pd = raw.get("prompt_tokens_details")
        cd = raw.get("completion_tokens_details")
        pd, cd = (pd if isinstance(pd, dict) else {}), (cd if isinstance(cd, dict) else {})
        prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
        unreadable = tuple(name for name, v in (("prompt_tokens", prompt), ("completion_tokens", completion))
                           if not plausible_count(v))
        reasoning = _count(cd.get("reasoning_tokens"))     # not a plausible count: 0
        if "completion_tokens" not in unreadable:
            reasoning = min(reasoning, _count(completion))     # a part of the completion tokens, never more
        cached, written = _count(pd.get("cached_tokens")), _count(pd.get("cache_write_tokens"))
        if "prompt_tokens" not in unreadable:                  # parts of the prompt tokens, never more
            cached, written = _prompt_parts(_count(prompt), cached, written)
        return cls(prompt_tokens=_count(prompt),
                   completion_tokens=_count(completion),
                   cached_tokens=cached,
                   cache_write_tokens=written,
                   reasoning_tokens=reasoning,
                   unreadable=unreadable)

    def implausible_zeros(self, *, prompt: bool, output: bool) -> "Usage":
        """This usage with a count of 0 made unreadable (for Router One to count) where there was
        something to count: a prompt (`prompt`: every request has one) or output relayed (`output`).
        A server that counts nothing says 0 and 0: the reply was billed $0."""
        zeros = tuple(name for name, had in (("prompt_tokens", prompt), ("completion_tokens", output))
                      if had and getattr(self, name) == 0 and name not in self.unreadable)
        return dataclasses.replace(self, unreadable=self.unreadable + zeros) if zeros else self

    def filled_from(self, counted: "Usage") -> "Usage":
        """This usage with its unreadable counts replaced by Router One's own (`counted`); the
        reasoning tokens stay a part of the completion tokens, the cached ones of the prompt tokens.
        What the upstream's readable parts of an unreadable total still say is a floor (Gemini's
        candidates beside unreadable thoughts): never billed less than that."""
        completion, prompt = self.completion_tokens, self.prompt_tokens
        if "completion_tokens" in self.unreadable:
            completion = max(counted.completion_tokens, completion)
        if "prompt_tokens" in self.unreadable:
            prompt = max(counted.prompt_tokens, prompt)
        cached, written = _prompt_parts(prompt, self.cached_tokens, self.cache_write_tokens)
        return dataclasses.replace(
            self, estimated=True, prompt_tokens=prompt, cached_tokens=cached, cache_write_tokens=written,
            completion_tokens=completion, reasoning_tokens=min(self.reasoning_tokens, completion))


def _prompt_parts(prompt: int, cached: int, written: int) -> tuple[int, int]:
    """Cached (read) and cache-written tokens as parts of the prompt's, never more together (as
    billing.prices prices them: reads first)."""
    cached = min(cached, prompt)
    return cached, min(written, prompt - cached)


def plausible_count(value: object) -> bool:
    """A token count as an upstream's JSON may carry one: an int (a whole float too), not a bool,
    in [0, MAX_REPORTED_TOKENS]. Anything else is unreadable: Router One counts it (`filled_from`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and not value.is_integer():
        return False
    return 0 <= value <= MAX_REPORTED_TOKENS


def _count(value) -> int:
    """A token count from an upstream's JSON if it is plausible, else 0 (see `plausible_count`)."""
    return int(value) if plausible_count(value) else 0
