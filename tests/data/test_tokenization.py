from __future__ import annotations

from bertlab.data.tokenization import CharTokenizer

VOCAB = "data/vocab/bert-base-chinese/vocab.txt"


def test_one_token_per_non_space_char_with_offsets():
    tok = CharTokenizer(VOCAB)
    text = "我爱 北京１９９８年Ａ“x”"
    enc = tok.encode(text)
    assert enc.ids[0] == tok.cls_id and enc.ids[-1] == tok.sep_id
    kept = [i for i, c in enumerate(text) if not c.isspace()]
    assert enc.offsets[1:-1] == kept
    assert len(enc.ids) == len(kept) + 2


def test_full_width_and_ascii_share_ids_and_unknowns_are_counted():
    tok = CharTokenizer(VOCAB)
    assert tok.encode("１９Ａ").ids == tok.encode("19a").ids
    enc = tok.encode("“”")
    assert enc.num_unk == 2 and enc.ids[1:-1] == [tok.unk_id, tok.unk_id]
