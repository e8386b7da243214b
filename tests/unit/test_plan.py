"""Version rules and batch folding (pure)."""

from __future__ import annotations

from rtindex.indexer.docview import build_view
from rtindex.indexer.events import DeleteEvent, PatchEvent, UpsertEvent
from rtindex.indexer.plan import Outcome, Stored, group_by_id, plan_document
from rtindex.settings import IndexSchema

SCHEMA = IndexSchema()


def tok(text: str) -> list[str]:
    return text.split()


def up(v: int, **doc: object) -> UpsertEvent:
    return UpsertEvent(op="upsert", id="a", version=v, ts=v, doc=doc)


def patch(v: int, **doc: object) -> PatchEvent:
    return PatchEvent(op="patch", id="a", version=v, ts=v, doc=doc)


def delete(v: int) -> DeleteEvent:
    return DeleteEvent(op="delete", id="a", version=v, ts=v)


def live(v: int, docnum: int, **doc: object) -> Stored:
    return Stored(version=v, docnum=docnum, src=dict(doc), view=build_view(doc, SCHEMA, tok))


def fold(base: Stored, *events: UpsertEvent | PatchEvent | DeleteEvent):  # type: ignore[no-untyped-def]
    return plan_document("a", base, list(enumerate(events)), SCHEMA, tok, bigrams=True)


def test_new_document() -> None:
    plan, out = fold(Stored(), up(1, title="x y"))
    assert out == {0: Outcome.APPLIED}
    assert plan is not None and plan.needs_docnum and plan.diff.add == {"x": (1, 0), "y": (1, 0)}


def test_stale_and_duplicate() -> None:
    plan, out = fold(live(5, 3, title="x"), up(4, title="old"), up(5, title="same"))
    assert plan is None
    assert out == {0: Outcome.STALE, 1: Outcome.DUPLICATE}


def test_delete_is_final_for_older_versions() -> None:
    tomb = Stored(version=9, deleted=True)
    plan, out = fold(tomb, up(8, title="zombie"), patch(9, title="zombie"))
    assert plan is None and out == {0: Outcome.STALE, 1: Outcome.DUPLICATE}
    plan, out = fold(tomb, up(10, title="back"))
    assert (
        plan is not None and not plan.deleted and plan.needs_docnum and out == {0: Outcome.APPLIED}
    )


def test_events_in_one_batch_fold_in_order() -> None:
    plan, out = fold(
        Stored(),
        up(1, title="a", price=1),
        patch(2, price=2),
        patch(3, title=None),
        up(2, title="late"),
    )
    assert out == {0: Outcome.APPLIED, 1: Outcome.APPLIED, 2: Outcome.APPLIED, 3: Outcome.STALE}
    assert plan is not None and plan.version == 3 and plan.src == {"price": 2}
    assert plan.events == [0, 1, 2]


def test_update_keeps_docnum_and_diffs() -> None:
    plan, _ = fold(live(1, 42, title="a b"), patch(2, title="a c"))
    assert plan is not None and plan.docnum == 42 and not plan.needs_docnum
    assert (
        plan.diff.add == {"c": (1, 0)} and plan.diff.remove == ("b",) and plan.diff.live_delta == 0
    )


def test_patch_of_missing_document_creates_it() -> None:
    plan, out = fold(Stored(), patch(3, title="p", price=None))
    assert out == {0: Outcome.APPLIED} and plan is not None and plan.src == {"title": "p"}


def test_delete_of_unknown_document_leaves_a_tombstone() -> None:
    plan, _ = fold(Stored(), delete(4))
    assert plan is not None and plan.deleted and plan.version == 4 and plan.docnum is None
    assert plan.diff.live_delta == 0


def test_delete_then_recreate_in_one_batch_keeps_the_docnum() -> None:
    plan, _ = fold(live(1, 7, title="a"), delete(2), up(3, title="b"))
    assert plan is not None and not plan.deleted and plan.docnum == 7
    assert plan.diff.add == {"b": (1, 0)} and plan.diff.remove == ("a",)


def test_group_by_id_keeps_arrival_order() -> None:
    a1, b1, a2 = up(1), DeleteEvent(op="delete", id="b", version=1, ts=1), up(2)
    assert group_by_id([a1, b1, a2]) == {"a": [(0, a1), (2, a2)], "b": [(1, b1)]}


def test_bigram_postings_follow_the_text_and_only_the_text() -> None:
    plan, _ = fold(Stored(), up(1, title="北京烤鸭", category="餐饮"))
    assert plan is not None
    assert plan.diff.bigrams_add == ("京烤", "北京", "烤鸭") and plan.diff.bigrams_remove == ()
    base = live(1, 7, title="北京烤鸭", category="餐饮")
    # A patch that leaves the text alone touches no bigram posting.
    plan, _ = fold(base, patch(2, category="小吃"))
    assert plan is not None and plan.diff.bigrams_add == plan.diff.bigrams_remove == ()
    # New text: only the changed bigrams move.
    plan, _ = fold(base, patch(2, title="北京烤肉"))
    assert plan is not None
    assert plan.diff.bigrams_add == ("烤肉",) and plan.diff.bigrams_remove == ("烤鸭",)
    # A delete drops them all.
    plan, _ = fold(base, delete(2))
    assert plan is not None and plan.diff.bigrams_remove == ("京烤", "北京", "烤鸭")


def test_no_bigram_postings_when_the_index_keeps_none() -> None:
    plan, _ = plan_document(
        "a", Stored(), [(0, up(1, title="北京烤鸭"))], SCHEMA, tok, bigrams=False
    )
    assert plan is not None and plan.diff.bigrams_add == ()


def test_a_bigram_that_is_a_word_of_the_document_gets_no_bigram_posting() -> None:
    # The words 北京 and 烤鸭店 (this tokenizer splits on spaces): 北京 is found through its
    # word posting, so only 烤鸭 and 鸭店 get bigram postings (none across the space).
    plan, _ = fold(Stored(), up(1, title="北京 烤鸭店"))
    assert plan is not None and plan.diff.bigrams_add == ("烤鸭", "鸭店")
    # The word goes away, the text keeps the bigram: now it needs a bigram posting.
    base = live(1, 7, title="北京 烤鸭店")
    plan, _ = fold(base, patch(2, title="北京烤鸭店"))
    assert plan is not None
    assert plan.diff.bigrams_add == ("京烤", "北京") and plan.diff.bigrams_remove == ()
    # And back: the word 北京 returns, its bigram posting goes.
    base = live(2, 7, title="北京烤鸭店")
    plan, _ = fold(base, patch(3, title="北京 烤鸭店"))
    assert plan is not None
    assert plan.diff.bigrams_add == () and plan.diff.bigrams_remove == ("京烤", "北京")
