"""The converter runs in its sandbox (node family) through the `skill` fixture."""

CMD = ["node", "scripts/md2html.js"]


def html(skill, markdown):
    result = skill.run(CMD + ["-"], stdin=markdown)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def test_headings_and_paragraphs(skill):
    assert html(skill, "# Title\n\nSome text\nwrapped here.\n\n### Small ##\n") == (
        "<h1>Title</h1>\n<p>Some text wrapped here.</p>\n<h3>Small</h3>\n"
    )


def test_inline_markup(skill):
    got = html(skill, "A *b* _c_ **d** `e < f` [g](https://x.org/a?b=1)\n")
    assert got == (
        '<p>A <em>b</em> <em>c</em> <strong>d</strong> <code>e &lt; f</code> '
        '<a href="https://x.org/a?b=1">g</a></p>\n'
    )


def test_unsafe_links_lose_their_target(skill):
    assert html(skill, "[x](javascript:alert(1)) [y](docs/page.html)\n") == (
        '<p>x) <a href="docs/page.html">y</a></p>\n'
    )


def test_lists(skill):
    got = html(skill, "- one\n* two\n\n1. first\n2) second\npara\n")
    assert got == (
        "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n<ol>\n<li>first</li>\n<li>second</li>\n</ol>\n<p>para</p>\n"
    )


def test_list_kinds_switch(skill):
    assert html(skill, "- a\n1. b\n") == "<ul>\n<li>a</li>\n</ul>\n<ol>\n<li>b</li>\n</ol>\n"


def test_code_blocks_are_escaped_verbatim(skill):
    got = html(skill, "```\n<b>*not em*</b>\n  indented\n```\nafter\n")
    assert got == "<pre><code>&lt;b&gt;*not em*&lt;/b&gt;\n  indented</code></pre>\n<p>after</p>\n"


def test_html_is_escaped(skill):
    assert html(skill, 'x <script>"&"</script>\n') == "<p>x &lt;script&gt;&quot;&amp;&quot;&lt;/script&gt;</p>\n"


def test_file_to_file_and_whole_page(skill):
    result = skill.run(
        CMD + ["in.md", "out.html", "--title", "R & D"], files={"in.md": "# Hi\r\n"}, outputs=["out.html"]
    )
    assert result.returncode == 0 and result.stdout == b""
    assert result.files["out.html"] == (
        b'<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"><title>R &amp; D</title></head>\n'
        b"<body>\n<h1>Hi</h1>\n</body>\n</html>\n"
    )


def test_missing_input_file(skill):
    result = skill.run(CMD + ["nope.md"])
    assert result.returncode == 2
    assert result.stderr == b"error: cannot read nope.md: ENOENT\n"
    assert result.stdout == b""
