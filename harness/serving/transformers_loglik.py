"""Log-likelihoods from the model in-process with transformers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from harness.serving.loglik import LogLik, LoglikScorer, Span


class HFScorer(LoglikScorer):
    """The model in-process with transformers, in float32, scoring spans in padded batches."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16) -> None:
        """`model`: any causal LM in eval mode, a peft model included (the transformers engine's
        own)."""
        import torch

        self.torch = torch
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    @classmethod
    def from_path(cls, model_path: str | Path, batch_size: int = 16) -> "HFScorer":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
        return cls(model, AutoTokenizer.from_pretrained(model_path), batch_size)

    def score(self, spans: Sequence[Span]) -> list[LogLik]:
        """Left-padded, so every row's scored tokens end in the last column and the vocabulary
        projection (a fifth of this model's compute) runs only on the columns some row scores."""
        torch = self.torch
        order = sorted(
            range(len(spans)), key=lambda i: len(spans[i].ids)
        )  # similar lengths pad least
        results: dict[int, LogLik] = {}
        for start in range(0, len(order), self.batch_size):
            chunk = [spans[i] for i in order[start : start + self.batch_size]]
            width = max(len(span.ids) for span in chunk)
            scored = max(len(span.ids) - span.start for span in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, span in enumerate(chunk):
                ids[row, width - len(span.ids) :] = torch.tensor(span.ids)
                mask[row, width - len(span.ids) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(
                min=0
            )  # each row counts from its own first token
            with torch.inference_mode():
                # The logits at column t predict column t+1: keep the `scored` columns before the
                # last.
                logits = (
                    self.model(
                        input_ids=ids,
                        attention_mask=mask,
                        position_ids=positions,
                        logits_to_keep=scored + 1,
                    )
                    .logits[:, :-1]
                    .float()
                )
                logprobs = torch.log_softmax(logits, dim=-1).gather(
                    -1, ids[:, width - scored :, None]
                )[..., 0]
            for row, (index, span) in enumerate(zip(order[start : start + self.batch_size], chunk)):
                count = len(span.ids) - span.start
                results[index] = LogLik(float(logprobs[row, scored - count :].sum()), count)
        return [results[i] for i in range(len(spans))]
