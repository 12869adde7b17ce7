package oga

import "unicode/utf8"

// xmlInvalid reports whether r must be replaced by U+FFFD before it may reach the model (and,
// through it, XML consumers such as Engine in VDSM's case). The ranges are VDSM's:
// U+0000–0008, 000B–000C, 000E–001F, 007F–0084, 0086–009F, D800–DFFF, FFFE–FFFF.
// Kept: TAB, LF, CR, 0x20–0x7E, U+0085, U+00A0–D7FF, E000–FFFD, 10000–10FFFF.
func xmlInvalid(r rune) bool {
	switch {
	case r < 0x20:
		return r != '\t' && r != '\n' && r != '\r'
	case r < 0x7f:
		return false
	case r <= 0x9f:
		return r != 0x85
	case r < 0xD800:
		return false
	case r <= 0xDFFF:
		return true
	case r < 0xFFFE:
		return false
	case r <= 0xFFFF:
		return true
	}
	return r > utf8.MaxRune
}

// appendFiltered appends r as UTF-8, or U+FFFD if r is XML-invalid.
func appendFiltered(b []byte, r rune) []byte {
	if xmlInvalid(r) {
		r = utf8.RuneError
	}
	return utf8.AppendRune(b, r)
}
