package guest

import (
	"strings"
	"testing"
)

func TestCutUTF8(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"", 4, ""},
		{"abc", 4, "abc"},
		{"abcdef", 4, "abcd"},
		{"abcé", 4, "abc"}, // é is 2 bytes: not split
		{"ab€x", 4, "ab"},  // € is 3 bytes
		{strings.Repeat("é", 3), 4, "éé"},
	} {
		if got := CutUTF8(c.in, c.max); got != c.want {
			t.Errorf("CutUTF8(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
		if got := string(CutUTF8([]byte(c.in), c.max)); got != c.want {
			t.Errorf("CutUTF8([]byte %q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
