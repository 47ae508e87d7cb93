"""Comparing our fill-mask predictions with transformers' fill-mask pipeline."""

import pytest


def assert_matches_pipeline(texts: list[str], ours: list, pipeline) -> float:
    """Asserts that `ours` (FillMask's output on `texts`) has the pipeline's keys, tokens, token
    strings and sequences, and scores within 1e-4; returns the largest score difference."""
    largest = 0.0
    for text, per_mask in zip(texts, ours, strict=True):
        theirs = pipeline(text)
        theirs = [theirs] if isinstance(theirs[0], dict) else theirs  # One mask: a flat list.
        assert len(per_mask) == len(theirs) == text.count("[MASK]")
        for our_predictions, their_predictions in zip(per_mask, theirs):
            assert [set(p) for p in our_predictions] == [set(p) for p in their_predictions]
            assert [p["token"] for p in our_predictions] == [p["token"] for p in their_predictions]
            assert [p["token_str"] for p in our_predictions] == [p["token_str"] for p in their_predictions]
            assert [p["sequence"] for p in our_predictions] == [p["sequence"] for p in their_predictions]
            for a, b in zip(our_predictions, their_predictions):
                assert a["score"] == pytest.approx(b["score"], abs=1e-4)
                largest = max(largest, abs(a["score"] - b["score"]))
    return largest
