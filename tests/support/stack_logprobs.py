"""Per-token prompt log-probabilities of a model folder (and of a peft adapter on it), as the
installed transformers and peft read them. tests/building/test_portable_models.py runs this one
script under transformers 5 (the harness's own stack) and under a transformers 4.x stack, so the two
read the folder through the same code and any difference is the library's reading of the files.

Imports only torch, transformers and peft, which work on either stack (never harness, whose code
needs 5.x). Usage: python stack_logprobs.py JOB.json OUT.json, where the job is {"model": folder,
"adapter": folder or null, "cases": [{"id", "messages"} or {"id", "text"}]}: messages are rendered
with the folder's chat template (see render), a text is scored as it is.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from typing import Any

LIBRARIES = ("transformers", "tokenizers", "huggingface_hub", "peft", "torch")


def token_logprobs(model: Any, ids: list[int]) -> list[float]:
    """log p(token | the tokens before it) for every token after the first, in float32."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    return (
        torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()
    )


def render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The chat template's text; a conversation that does not end with the model's answer gets the
    prompt for one, as a request to the model would."""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=messages[-1]["role"] != "assistant"
    )


def main(job_file: str, out_file: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    job = json.loads(open(job_file).read())
    tokenizer = AutoTokenizer.from_pretrained(job["model"], local_files_only=True)
    # float32 on both: 5.x would load the folder's bf16 as is, 4.x as float32 (their default dtypes
    # differ)
    model = AutoModelForCausalLM.from_pretrained(job["model"], local_files_only=True).float().eval()
    ids = {
        case["id"]: (
            tokenizer(
                case["text"] if "text" in case else render(tokenizer, case["messages"])
            ).input_ids
        )
        for case in job["cases"]
    }
    out: dict[str, Any] = {
        "versions": {name: version(name) for name in LIBRARIES},
        "tokenizer_class": type(tokenizer).__name__,
        "ids": ids,
        "base": {case_id: token_logprobs(model, tokens) for case_id, tokens in ids.items()},
    }
    if job.get("adapter"):
        from peft import PeftModel

        tuned = PeftModel.from_pretrained(model, job["adapter"])
        out["adapter"] = {case_id: token_logprobs(tuned, tokens) for case_id, tokens in ids.items()}
    open(out_file, "w").write(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
