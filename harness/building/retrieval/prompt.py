"""Placing retrieved chunks in the prompt: a Jinja2 template with `question` and `chunks`.

Autoescape is off because the output is a prompt, not HTML: escaping would turn a document's
`<` and `&` into entities the model never saw in training. Undefined names are errors, so a
typo in a template fails the config check instead of silently rendering as nothing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta

from harness.building.retrieval.index import Hit
from harness.core.errors import ConfigError

DEFAULT_TEMPLATE = """\
Answer the question using only the documents below. Reply with the exact value from the documents.

{% for chunk in chunks %}
[{{ chunk.id }}]
{{ chunk.text }}

{% endfor %}
Question: {{ question }}"""

VARIABLES = ("question", "chunks")
_ENV = jinja2.Environment(
    autoescape=False,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)
_SENTINEL = "harness-check-chunk-text-7f3a"


@lru_cache(maxsize=64)
def _compile(template: str) -> jinja2.Template:
    return _ENV.from_string(template)


def _chunk_vars(hits: list[Hit]) -> list[dict[str, Any]]:
    return [
        {
            "id": h.chunk_id,
            "doc_id": h.doc_id,
            "text": h.text,
            "score": h.score,
            "metadata": h.metadata,
        }
        for h in hits
    ]


def render_context(template: str, question: str, hits: list[Hit]) -> str:
    """The prompt text: `chunks` is a list of {id, doc_id, text, score, metadata}, best first."""
    return _compile(template).render(question=question, chunks=_chunk_vars(hits))


def check_template(template: str, source: str, key: str = "template") -> None:
    """ConfigError (naming `source` and `key`) unless the template parses, uses only known
    variables, renders, and places each retrieved chunk's text in the prompt."""
    fix = (
        f"see harness.building.retrieval.DEFAULT_TEMPLATE; available: {', '.join(VARIABLES)} (each"
        " chunk has id, doc_id, text, score, metadata)"
    )
    try:
        names = meta.find_undeclared_variables(_ENV.parse(template))
        compiled = _compile(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            source, key, f"template does not parse: {exc.message} (template line {exc.lineno})", fix
        ) from None
    unknown = sorted(names - set(VARIABLES))
    if unknown:
        raise ConfigError(
            source, key, f"template uses unknown variables: {', '.join(unknown)}", fix
        )
    sample = [Hit("guide.md#0", "guide.md", 1.0, _SENTINEL)]
    try:
        rendered = compiled.render(
            question="What is the sample question?", chunks=_chunk_vars(sample)
        )
    except Exception as exc:  # noqa: BLE001 - a user template can fail in any way; report it as config
        raise ConfigError(
            source, key, f"template does not render: {type(exc).__name__}: {exc}", fix
        ) from None
    if _SENTINEL not in rendered:
        raise ConfigError(
            source,
            key,
            "template never places the retrieved text in the prompt",
            "loop over the chunks: {% for chunk in chunks %}[{{ chunk.id }}] {{ chunk.text }}"
            "{% endfor %}",
        )
