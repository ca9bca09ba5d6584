from expertbook.text import multiline


def test_multiline_keeps_lines_and_tabs_and_drops_control_characters():
    assert multiline("  a\r\nb\rc\n\td\x0be\x1bf\x7fg\x0ch\x00  ") == "a\nb\nc\n\tdefgh"
    assert multiline("Ünïcode 🎉, \u00a0non-breaking") == "Ünïcode 🎉, \u00a0non-breaking"
