package guest

import (
	"strings"
	"unicode/utf8"
)

// CutUTF8 shortens valid UTF-8 s to at most maxBytes, never splitting a character.
func CutUTF8[T ~string | ~[]byte](s T, maxBytes int) T {
	if len(s) <= maxBytes {
		return s
	}
	n := maxBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// XMLInvalid reports whether r must be replaced by U+FFFD before guest text may reach the model
// (and, through it, XML consumers such as Engine in VDSM's case). The ranges are VDSM's:
// U+0000–0008, 000B–000C, 000E–001F, 007F–0084, 0086–009F, D800–DFFF, FFFE–FFFF.
// Kept: TAB, LF, CR, 0x20–0x7E, U+0085, U+00A0–D7FF, E000–FFFD, 10000–10FFFF.
func XMLInvalid(r rune) bool {
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

// FilterText returns s as the guest filter passes it: invalid UTF-8 and XML-invalid code points
// (see XMLInvalid) become U+FFFD.
func FilterText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s { // invalid UTF-8 ranges as utf8.RuneError, i.e. U+FFFD
		if XMLInvalid(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}
