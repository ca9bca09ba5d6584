from expertbook.text import multiline


def test_multiline_keeps_lines_and_tabs_and_drops_control_characters():
    assert multiline("  a\r\nb\rc\n\td\x0be\x1bf\x7fg\x0ch\x00  ") == "a\nb\nc\n\tdefgh"
    assert multiline("Ünïcode 🎉, \u00a0non-breaking") == "Ünïcode 🎉, \u00a0non-breaking"


def test_multiline_drops_bidirectional_overrides_and_zero_width_characters():
    spoof = "pay \u202egnp.exe\u202c to\u200b\u200c\u200d\u2060\ufeff me \u2066x\u2069\u200e\u200f"
    assert multiline(spoof) == "pay gnp.exe to me x"
