package oga

import (
	"bytes"
	"strings"
	"testing"
)

// split feeds chunks and returns the complete lines and the number of dropped lines.
func split(max int, chunks ...string) (lines []string, dropped int, s *lineSplitter) {
	s = newLineSplitter(max)
	for _, c := range chunks {
		s.feed([]byte(c), func(l []byte) { lines = append(lines, string(l)) }, func() { dropped++ })
	}
	return lines, dropped, s
}

func TestSplitterBasic(t *testing.T) {
	lines, dropped, s := split(100, "a\nb", "c\n\nd\r\n", "tail")
	want := []string{"a", "bc", "", "d\r"}
	if strings.Join(lines, "|") != strings.Join(want, "|") || dropped != 0 {
		t.Fatalf("lines %q dropped %d", lines, dropped)
	}
	if s.pending() != 4 {
		t.Fatalf("pending %d", s.pending())
	}
}

func TestSplitterCap(t *testing.T) {
	const max = 100
	exact := strings.Repeat("x", max-1) + "\n" // exactly max bytes including '\n': accepted
	over := strings.Repeat("y", max) + "\n"    // max+1: dropped
	cases := []struct {
		name    string
		chunks  []string
		lines   []string
		dropped int
	}{
		{"exactly at cap", []string{exact}, []string{exact[:max-1]}, 0},
		{"exactly at cap, byte by byte", strings.Split(exact, ""), []string{exact[:max-1]}, 0},
		{"over cap in one chunk", []string{over + "ok\n"}, []string{"ok"}, 1},
		{"over cap across chunks", []string{over[:60], over[60:] + "ok\n"}, []string{"ok"}, 1},
		{"cap crossed at chunk boundary", []string{over[:max], "\nok\n"}, []string{"ok"}, 1},
		{"oversized then exact", []string{over, exact}, []string{exact[:max-1]}, 1},
		{"two oversized", []string{over + over + "z\n"}, []string{"z"}, 2},
		{"endless partial line", []string{strings.Repeat("p", 70), strings.Repeat("p", 70), strings.Repeat("p", 500)}, nil, 1},
		{"endless then newline", []string{strings.Repeat("p", 300), "pp\nnext\n"}, []string{"next"}, 1},
		{"crlf", []string{"{\"a\":1}\r\n"}, []string{"{\"a\":1}\r"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lines, dropped, s := split(max, c.chunks...)
			if strings.Join(lines, "|") != strings.Join(c.lines, "|") || dropped != c.dropped {
				t.Fatalf("lines %q dropped %d, want %q %d", lines, dropped, c.lines, c.dropped)
			}
			if s.pending() >= max {
				t.Fatalf("buffered %d bytes", s.pending())
			}
		})
	}
}

func TestSplitterEndlessLineBoundedMemory(t *testing.T) {
	s := newLineSplitter(MaxMessageSize)
	chunk := bytes.Repeat([]byte("z"), 64<<10)
	drops := 0
	for range 100 { // 6.4 MiB without a newline
		s.feed(chunk, func([]byte) { t.Fatal("no line expected") }, func() { drops++ })
		if cap(s.buf) > MaxMessageSize+len(chunk) {
			t.Fatalf("buffer grew to %d", cap(s.buf))
		}
	}
	if drops != 1 || !s.skipping || s.pending() != 0 {
		t.Fatalf("drops %d skipping %v pending %d", drops, s.skipping, s.pending())
	}
	var got []string
	s.feed([]byte("zz\n{}\n"), func(l []byte) { got = append(got, string(l)) }, func() { drops++ })
	if len(got) != 1 || got[0] != "{}" || drops != 1 {
		t.Fatalf("got %q drops %d", got, drops)
	}
}
