"""Shareable links: what a query string may set, what is ignored with a note, and the way back."""

import pytest

from clipdemo.core.labels import LabelSet
from clipdemo.ui.links import MAX_LINK_LABELS, MAX_QUERY, Link, link_query, read_link


def keys(notes):
    return [n.key for n in notes]


def test_the_notebook_link():
    assert read_link("?index=15&k=5") == (Link(index=15, k=5), ())


def test_labels_template_preset_and_tab():
    link, notes = read_link("?labels=cat, dog ,lion&template=a sketch of a {}&tab=labels")
    assert notes == () and link.label_set == LabelSet.of(["cat", "dog", "lion"], ["a sketch of a {}"])
    assert link.tab == "labels"
    link, notes = read_link({"preset": "cifar10", "template": "cifar18"})
    assert notes == () and link.label_set == LabelSet.preset("cifar10", "cifar18")


@pytest.mark.parametrize("query, key", [
    ("?index=99999", "link_bad_index"), ("?index=-1", "link_bad_index"), ("?index=lion", "link_bad_index"),
    ("?k=0", "link_bad_k"), ("?k=21", "link_bad_k"), ("?preset=imagenet", "link_bad_preset"),
    ("?template=a photo", "link_bad_template"), ("?labels=cat", "link_bad_labels"), ("?tab=admin", "link_bad_tab"),
    ("?colour=red", "link_unknown"), ("?labels=" + ",".join(f"l{i}" for i in range(MAX_LINK_LABELS + 1)),
                                      "link_many_labels")])
def test_a_bad_value_is_ignored_with_a_note(query, key):
    link, notes = read_link(query)
    assert keys(notes) == [key]
    assert link == Link()  # the bad value is dropped; the page keeps its default


def test_bad_values_do_not_spoil_good_ones_and_gradio_keeps_its_theme_parameter():
    link, notes = read_link("?index=42&k=99&tab=nowhere&__theme=dark")
    assert link == Link(index=42) and keys(notes) == ["link_bad_k", "link_bad_tab"]


def test_an_oversized_query_is_ignored_whole():
    link, notes = read_link("?labels=" + "x" * MAX_QUERY)
    assert link == Link() and keys(notes) == ["link_too_long"]


def test_labels_with_a_template_too_long_for_clip_are_refused_as_typed_ones_are():
    link, notes = read_link("?labels=cat,dog&template=" + "very " * 80 + "{}")
    assert link == Link() and keys(notes) == ["link_bad_labels"] and "77" in str(notes[0])
    assert notes[0].say("tr") != str(notes[0])  # the note, and the refusal inside it, in the visitor's language


def test_a_result_link_reads_back_to_the_same_values():
    cases = [Link(index=15, k=5, tab="predict"),
             Link(index=3, k=3, label_set=LabelSet.of(["red car", "blue bike", "lion"], ["a sketch of a {}"])),
             Link(k=2, label_set=LabelSet.preset("cifar10", "cifar18"))]
    for link in cases:
        query = link_query(link)
        assert query.startswith("?") and read_link(query) == (link, ())


def test_a_written_link_is_never_too_long_to_read_back_and_its_template_is_normalised():
    labels = [f"a rather long label with ünïcödé number {i}" for i in range(MAX_LINK_LABELS)]
    query = link_query(Link(index=7, k=3, label_set=LabelSet.of(labels, ["a photo of a {}"])))
    assert len(query) <= MAX_QUERY and read_link(query) == (Link(index=7, k=3), ())  # labels left out, index kept
    link, notes = read_link("?labels=cat,dog&template=a   photo of  a {}")
    assert notes == () and link.label_set.templates == ("a photo of a {}",)


def test_the_default_set_and_sets_that_cannot_travel_leave_their_fields_out():
    assert link_query(Link(index=1, label_set=LabelSet.preset())) == "?index=1"
    assert "labels" not in link_query(Link(label_set=LabelSet.of(["a, b", "c"], ["{}"])))  # a comma can't travel
    two = LabelSet.of(["cat", "dog"], ["a {}", "an {}"])
    assert link_query(Link(label_set=two)) == "?labels=cat,dog"  # two templates of one's own can't travel


def test_a_search_link_carries_its_query_and_reads_back():
    from clipdemo.core.search import SearchQuery

    link, notes = read_link("?tab=search&q=a+red+car&neg=rain&raw=1&n=12")
    assert notes == () and link.search == SearchQuery.of("a red car", "rain", raw=True) and link.n == 12
    assert link_query(link) == "?q=a+red+car&neg=rain&raw=1&n=12&tab=search"
    assert read_link(link_query(link))[0] == link
    bad, notes = read_link("?q=&neg=rain&n=500")  # only a negative; too many results
    assert bad.search is None and bad.n is None
    assert [n.key for n in notes] == ["search_only_negative", "out_of_range"]
