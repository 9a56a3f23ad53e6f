"""Writes the tickets suite's cases: support tickets -> {"category", "priority"} JSON.

Run `python suites/tickets/generate.py` to rebuild cases.jsonl (the golden test split) and
train.jsonl (a disjoint split for fine-tuning). Deterministic: the same seed gives the same files.
Priority follows stated rules (money lost or a service down -> high; a how-to -> low; else medium),
so a model can learn them from examples; the allowed values are not in the ticket text.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

INSTRUCTION = (
    "Turn this support ticket into JSON with the fields category and priority.\n\nTicket: "
)

TEMPLATES: dict[tuple[str, str], list[str]] = {
    ("billing", "high"): [
        "I was charged {n} times for my {plan} plan this month. Please refund the extra charges now.",
        "You took ${amount} from my card after I cancelled my {plan} plan. I want my money back today.",
        "My invoice shows ${amount} but my {plan} plan costs much less. I have been overcharged.",
        "The payment for my {plan} plan went through twice and my account is now overdrawn.",
    ],
    ("billing", "low"): [
        "Can I get a copy of last month's invoice for my {plan} plan as a PDF?",
        "How do I change the billing address shown on my {plan} invoices?",
        "Which payment methods do you accept for the {plan} plan?",
        "Is there a discount if I pay for the {plan} plan yearly instead of monthly?",
    ],
    ("technical", "high"): [
        "Your {product} has been down for {n} hours and none of my team can work.",
        "Every request to the {product} returns a 500 error since this morning. Production is broken.",
        "The {product} deleted all of my saved projects after the update. Please restore them now.",
        "The {product} crashes on start for all {n} of our users since the last release.",
    ],
    ("technical", "medium"): [
        "The {product} is slow to load pages in the afternoon, about {n} seconds each.",
        "Dark mode in the {product} resets to light mode every time I restart it.",
        "Exports from the {product} sometimes have the columns in the wrong order.",
        "The search in the {product} misses results that contain numbers like {n}.",
    ],
    ("account", "low"): [
        "How do I change the email address on my profile?",
        "Where can I update my display name to {name}?",
        "How do I turn on two-factor authentication for my account?",
        "Can I add {name} as a second user on my account?",
    ],
    ("account", "medium"): [
        "I can't log in: it says my password is wrong but I reset it {n} minutes ago.",
        "My account was locked after {n} failed logins and the unlock email never arrives.",
        "I no longer have access to the phone number used for my login codes.",
        "The account settings page will not save my new time zone.",
    ],
    ("shipping", "medium"): [
        "My order #{order} was supposed to arrive {n} days ago and the tracking has not moved.",
        "The tracking for order #{order} says delivered but nothing came to my door.",
        "Order #{order} arrived with {n} items missing from the box.",
        "Can you send order #{order} to my work address instead? It has not shipped yet.",
    ],
    ("shipping", "high"): [
        "Order #{order} arrived broken and I need the replacement before my event tomorrow.",
        "I paid ${amount} for express delivery on order #{order} and it is {n} days late.",
        "Order #{order} was delivered to the wrong city and it contains medication I need.",
        "You shipped order #{order} twice and charged me twice. Please stop the second parcel.",
    ],
}

FILL = {
    "plan": ["Basic", "Pro", "Team", "Enterprise"],
    "product": ["mobile app", "web dashboard", "API", "desktop app", "sync service"],
    "name": ["Alex", "Priya", "Jordan", "Mei", "Sam"],
}


def render(template: str, rng: random.Random) -> str:
    return template.format(
        n=rng.randint(2, 9),
        amount=rng.choice([19, 49, 99, 249]),
        order=rng.randint(10000, 99999),
        **{key: rng.choice(values) for key, values in FILL.items()},
    )


def build(seed: int = 7) -> tuple[list[dict], list[dict]]:
    """The first two templates of each label feed the test split; the rest (and fresh fills) feed training."""
    rng = random.Random(seed)
    test, train = [], []
    for (category, priority), templates in TEMPLATES.items():
        label = json.dumps({"category": category, "priority": priority})
        for t_index, template in enumerate(templates):
            split, copies = (test, 2) if t_index < 2 else (train, 16)
            for _ in range(copies):
                ticket = render(template, rng)
                split.append(
                    {"ticket": ticket, "label": label, "category": category, "priority": priority}
                )
    rng.shuffle(test)
    rng.shuffle(train)
    return test, train


def main() -> None:
    here = Path(__file__).parent
    test, train = build()
    with (here / "cases.jsonl").open("w") as handle:
        for i, row in enumerate(test, start=1):
            handle.write(
                json.dumps(
                    {
                        "id": f"ticket-{i:03d}",
                        "prompt": INSTRUCTION + row["ticket"],
                        "reference": row["label"],
                        "tags": [row["category"], row["priority"]],
                    }
                )
                + "\n"
            )
    with (here / "train.jsonl").open("w") as handle:
        for row in train:
            handle.write(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": INSTRUCTION + row["ticket"]},
                            {"role": "assistant", "content": row["label"]},
                        ]
                    }
                )
                + "\n"
            )
    print(f"wrote {len(test)} test cases and {len(train)} training examples")


if __name__ == "__main__":
    main()
