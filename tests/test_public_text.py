"""What visitors see of errors: no server paths, URLs whole, and Markdown or toast text shown as written."""

from clipdemo.ui.common import hide_paths

URL = "https://openaipublic.azureedge.net/clip/models/40d3_a/ViT-B-32.pt"


def test_server_paths_are_cut_to_their_last_part_and_urls_stay_whole():
    text = (f"CIFAR-100 is not available under /home/user/.cache/clipdemo/data: Could not fetch {URL}: "
            "<urlopen error [Errno -3] Temporary failure>. Put it in '/srv/data/cifar-100-python/', or ~/.cache/x.")
    shown = hide_paths(text)
    assert "/home/user" not in shown and "/srv/data" not in shown and "~/.cache" not in shown
    assert "…/data:" in shown and "'…/cifar-100-python/'" not in shown and "…/cifar-100-python'" in shown
    assert URL in shown and "<urlopen error [Errno -3] Temporary failure>" in shown


def test_server_messages_keep_urls_whole_and_escape_the_rest():
    from clipdemo.ui.common import md_message, toast_text
    shown = md_message(f"Could not fetch {URL}: <urlopen error x> *a* _b_ `c`.")
    assert f"<{URL}>" in shown  # an autolink, with no backslash inside
    assert "\\<urlopen error x\\>" in shown and "\\*a\\*" in shown and "\\_b\\_" in shown and "\\`c\\`" in shown
    assert toast_text("dataset: <urlopen error x> & more") == "dataset: &lt;urlopen error x&gt; &amp; more"


def test_visitor_text_never_becomes_a_link():
    """A label (or a link's value) that looks like a URL stays text: the auto-linker finds no `://` or `www.` in
    it (the browser test checks the page has no link), and every special character is escaped."""
    from clipdemo.ui.common import md_text
    for text in ("https://evil.example/login", "www.evil.example", "see evil.example/x_y now"):
        shown = md_text(text)
        assert "://" not in shown and "www." not in shown and ".example" not in shown, shown
    assert md_text("<img src=x> *b* a_b") == "\\<img src=x\\> \\*b\\* a\\_b"
