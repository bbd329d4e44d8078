"""NER on People's Daily (BIO; PER / LOC / ORG): the arms of :mod:`bertlab.reproduce.ner`
(CRF x1 / x10 / x100, softmax, MEMM x10; main lr 1e-3 from scratch, 3 seeds, at most 8
minutes of training per run) on ``data=ner_peoples_daily``.

The corpus's train split is not shipped (data/README.md), so this table trains on
``example.dev`` without every 10th sentence (2,087 sentences), selects checkpoints on those
held-out 10% (231) and tests on all of ``example.test`` (4,636): ``data.split=dev_train``
(the data card's default split, ``test_train``, trains on example.test instead).

    python -m bertlab.reproduce ner_pd [--out FILE] [--multirun DIR] [--seeds 1,2,3] [-- overrides ...]
"""

from __future__ import annotations

from bertlab.reproduce.ner import ner_reproduction

TYPES = ("PER", "LOC", "ORG")  # conf/data/ner_peoples_daily.yaml

REPRODUCTION = ner_reproduction(
    name="ner_pd",
    data="ner_peoples_daily",
    types=TYPES,
    published="docs/ner_peoples_daily.md",
    data_overrides=("data.split=dev_train",),
    description="CRF post (1) on People's Daily NER: CRF x1 / x10 / x100, softmax and MEMM heads, 3 seeds each.",
    title="People's Daily NER: CRF lr multiplier x1 / x10 / x100, softmax and MEMM heads (from scratch, main lr 1e-3)",
    footer="Split (no train file here; data.split=dev_train): train = example.dev minus every 10th sentence "
    "(2,087), validation = those 231, test = example.test (4,636). bert4keras's example (pretrained BERT-base, lr 1e-5, CRF x1000, the full train split) reports "
    "valid / test F1 96.32 / 95.15%; this from-scratch table is not comparable to it.",
)
