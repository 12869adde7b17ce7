package guest

import "unicode/utf8"

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
