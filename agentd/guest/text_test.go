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

func TestFilterText(t *testing.T) {
	in := "a\x00b\tc\u0085d\u0086e\x7f\ufeff\U0001F600\xff\n"
	want := "a\uFFFDb\tc\u0085d\uFFFDe\uFFFD\ufeff\U0001F600\uFFFD\n"
	if got := FilterText(in); got != want {
		t.Errorf("FilterText(%q) = %q, want %q", in, got, want)
	}
}
