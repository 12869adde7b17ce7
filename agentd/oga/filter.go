package oga

import (
	"unicode/utf8"

	"guestagent.io/operator/agentd/guest"
)

// xmlInvalid reports whether r must be replaced by U+FFFD before it may reach the model; see
// guest.XMLInvalid.
func xmlInvalid(r rune) bool { return guest.XMLInvalid(r) }

// appendFiltered appends r as UTF-8, or U+FFFD if r is XML-invalid.
func appendFiltered(b []byte, r rune) []byte {
	if xmlInvalid(r) {
		r = utf8.RuneError
	}
	return utf8.AppendRune(b, r)
}
