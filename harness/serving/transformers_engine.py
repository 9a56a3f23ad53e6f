"""The same model in-process with transformers: the fallback where vLLM is not installed.

Greedy (temperature 0) requests run in left-padded batches; sampled ones one at a time with a
per-request seed, so the same request gives the same answer whatever else is in the run.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from itertools import groupby
from pathlib import Path
from typing import Any, Iterator, Sequence

from harness.core.models import ModelRef
from harness.core.request import Completion, Request
from harness.serving.base import Adapter, Engine, LocalTarget
from harness.serving.loglik import answer_all, loglik_batches
from harness.serving.settings import TransformersConfig
from harness.serving.transformers_loglik import HFScorer


class TransformersEngine:
    def __init__(
        self, model: ModelRef, batch_size: int, dtype: str, adapters: Sequence[Adapter] = ()
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model.path, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = torch.float32 if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model.path, dtype=torch_dtype).eval()
        self.adapters = [a.name for a in adapters]
        if adapters:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(
                self.model, str(adapters[0].path), adapter_name=adapters[0].name
            )
            for adapter in adapters[1:]:
                self.model.load_adapter(str(adapter.path), adapter_name=adapter.name)
            self.model.eval()
        self.batch_size = batch_size
        self.scorer = HFScorer(self.model, self.tokenizer, batch_size)

    def _use(self, name: str) -> AbstractContextManager:
        """A request names an adapter (served name) or the base model, as it does with vLLM."""
        if name in self.adapters:
            self.model.set_adapter(name)
            return nullcontext()
        return self.model.disable_adapter() if self.adapters else nullcontext()

    def _encode(self, requests: Sequence[Request]) -> Any:
        texts = [
            self.tokenizer.apply_chat_template(r.chat(), tokenize=False, add_generation_prompt=True)
            for r in requests
        ]
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def _generate(self, requests: Sequence[Request]) -> list[Completion]:
        first = requests[0]
        started = time.perf_counter()
        inputs = self._encode(requests)
        sample = first.temperature > 0
        if sample:
            self.torch.manual_seed(first.seed)
        with self.torch.inference_mode(), self._use(first.model):
            out = self.model.generate(
                **inputs,
                max_new_tokens=first.max_tokens,
                do_sample=sample,
                temperature=first.temperature if sample else None,
                top_p=first.top_p if sample else None,
                top_k=None,
                stop_strings=list(first.stop) or None,
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
                output_logits=bool(first.top_logprobs),
                return_dict_in_generate=True,
            )
        elapsed = time.perf_counter() - started
        width = inputs["input_ids"].shape[1]
        tops = (
            self._top_logprobs(out.logits[0], first.top_logprobs)
            if first.top_logprobs
            else [()] * len(requests)
        )
        results = []
        for row, mask, top in zip(out.sequences, inputs["attention_mask"], tops, strict=True):
            new = row[width:]
            eos = (new == self.tokenizer.eos_token_id).nonzero()
            length = int(eos[0]) if len(eos) else len(new)
            text = self.tokenizer.decode(new[:length], skip_special_tokens=True)
            for stop in first.stop:
                text = text.split(stop)[0]
            results.append(
                Completion(
                    text=text,
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=length,
                    latency_s=elapsed,
                    finish_reason="length" if length >= first.max_tokens else "stop",
                    top_logprobs=top,
                )
            )
        return results

    def _top_logprobs(self, logits: Any, k: int) -> list[tuple[tuple[str, float], ...]]:
        """Per row, the first generated token's k likeliest alternatives, as vLLM and OpenAI return
        them."""
        values, ids = self.torch.log_softmax(logits.float(), dim=-1).topk(k, dim=-1)
        return [
            tuple(
                (self.tokenizer.decode([i]), float(v))
                for i, v in zip(row_ids.tolist(), row_values.tolist())
            )
            for row_ids, row_values in zip(ids, values)
        ]

    def _loglik(self, requests: Sequence[Request]) -> list[Completion]:
        """Log-likelihoods from this engine's own weights (the adapter the requests name, if any)."""
        with self._use(requests[0].model):
            return answer_all(self.scorer, requests)

    def run(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        """Batch requests that share settings (generate() takes one setting per batch)."""
        for batch in loglik_batches(requests):
            yield from zip(batch, self._loglik([requests[i] for i in batch]), strict=True)

        def settings(i: int) -> tuple:
            r = requests[i]
            return (r.model, r.max_tokens, r.temperature, r.top_p, r.stop, r.seed, r.top_logprobs)

        chats = [i for i, r in enumerate(requests) if r.loglik == "none"]
        order = sorted(chats, key=lambda i: (settings(i), len(str(requests[i].messages))))
        for key, group in groupby(order, key=settings):
            indices = list(group)
            size = self.batch_size if key[2] == 0 else 1
            for start in range(0, len(indices), size):
                chunk = indices[start : start + size]
                try:
                    completions = self._generate([requests[i] for i in chunk])
                except Exception as exc:  # one failing batch becomes error rows, not a lost run
                    completions = [
                        Completion(text="", error=f"{type(exc).__name__}: {exc}"[:500])
                    ] * len(chunk)
                yield from zip(chunk, completions)


@contextmanager
def transformers_engine(
    target: LocalTarget, config: TransformersConfig, run_dir: Path, seed: int
) -> Iterator[Engine]:
    yield TransformersEngine(target.model, config.batch_size, config.dtype, target.adapters)
