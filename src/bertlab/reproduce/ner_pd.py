"""NER on People's Daily (BIO; PER / LOC / ORG): the arms of :mod:`bertlab.reproduce.ner`
(CRF x1 / x10 / x100, softmax, MEMM x10; main lr 1e-3 from scratch, 3 seeds, at most 8
minutes of training per run) on ``data=ner_peoples_daily``.

The corpus's train split is not shipped (data/README.md): bertlab trains on ``example.test``
(4,636 sentences) and validates / tests on the two halves of ``example.dev`` (odd / even
sentences, 1,159 each), the data card's split; no sentence text is in two splits.

    python -m bertlab.reproduce ner_pd [--out FILE] [--multirun DIR] [--seeds 1,2,3] [-- overrides ...]
"""

from __future__ import annotations

from bertlab.reproduce.ner import ner_reproduction

TYPES = ("PER", "LOC", "ORG")  # conf/data/ner_peoples_daily.yaml

REPRODUCTION = ner_reproduction(
    name="ner_pd",
    data="ner_peoples_daily",
    types=TYPES,
    out="docs/ner_peoples_daily.md",
    description="CRF post (1) on People's Daily NER: CRF x1 / x10 / x100, softmax and MEMM heads, 3 seeds each.",
    title="People's Daily NER: CRF lr multiplier x1 / x10 / x100, softmax and MEMM heads (from scratch, main lr 1e-3)",
    footer="Split (no train file here): train = example.test, validation / test = odd / even sentences of "
    "example.dev. bert4keras's example (pretrained BERT-base, lr 1e-5, CRF x1000, the full train split) reports "
    "valid / test F1 96.32 / 95.15%; this from-scratch table is not comparable to it.",
)
