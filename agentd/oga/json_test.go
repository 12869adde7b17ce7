package oga

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func parseStr(t *testing.T, jsonStr string) string {
	t.Helper()
	var d decoder
	root, err := d.parse([]byte(`{"k":` + jsonStr + `}`))
	if err != nil {
		t.Fatalf("parse %s: %v", jsonStr, err)
	}
	v, _ := d.get(root, "k")
	b, ok := d.text(v)
	if !ok {
		t.Fatalf("not a string: %s", jsonStr)
	}
	return string(b)
}

func TestFilterBoundaries(t *testing.T) {
	const fffd = "\uFFFD"
	cases := []struct {
		r    rune
		keep bool
	}{
		{0x00, false}, {0x08, false}, {0x09, true}, {0x0A, true}, {0x0B, false}, {0x0C, false},
		{0x0D, true}, {0x0E, false}, {0x1F, false}, {0x20, true}, {0x7E, true}, {0x7F, false},
		{0x84, false}, {0x85, true}, {0x86, false}, {0x9F, false}, {0xA0, true}, {0xD7FF, true},
		{0xD800, false}, {0xDBFF, false}, {0xDC00, false}, {0xDFFF, false}, {0xE000, true},
		{0xFFFD, true}, {0xFFFE, false}, {0xFFFF, false}, {0x10000, true}, {0x10FFFF, true},
	}
	for _, c := range cases {
		want := string(c.r)
		if !c.keep {
			want = fffd
		}
		// As a \u escape (surrogate pairs for astral code points).
		esc := fmt.Sprintf(`"\u%04x"`, c.r)
		if c.r > 0xFFFF {
			r := c.r - 0x10000
			esc = fmt.Sprintf(`"\u%04x\u%04x"`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		}
		if got := parseStr(t, esc); got != want {
			t.Errorf("escape U+%04X: got %q want %q", c.r, got, want)
		}
		// Raw UTF-8 (only where raw is valid JSON and valid UTF-8).
		if c.r >= 0x20 && (c.r < 0xD800 || c.r > 0xDFFF) {
			raw := `"` + string(c.r) + `"`
			if got := parseStr(t, raw); got != want {
				t.Errorf("raw U+%04X: got %q want %q", c.r, got, want)
			}
		}
	}
}

func TestDecodeStrings(t *testing.T) {
	cases := map[string]string{
		`"plain"`:              "plain",
		`"a\"b\\c\/d"`:         `a"b\c/d`,
		`"\n\r\t"`:             "\n\r\t",
		`"\b\f"`:               "\uFFFD\uFFFD",
		`"\u0000x"`:            "\uFFFDx",
		`"\u2122 \u00e9"`:      "™ é",
		`"™"`:                  "™",
		`"\ud83d\ude00"`:       "😀",
		`"\ud83d"`:             "\uFFFD",
		`"\ude00\ud83d"`:       "\uFFFD\uFFFD",
		`"\ud83dx"`:            "\uFFFDx",
		`"\ud83d\u0041"`:       "\uFFFDA",
		"\"a\x7fb\"":           "a\uFFFDb",
		"\"\xff\xfe\"":         "\uFFFD\uFFFD",
		"\"\xed\xa0\x80\"":     "\uFFFD\uFFFD\uFFFD", // UTF-8-encoded surrogate is invalid UTF-8
		"\"caf\xc3\xa9\"":      "café",
		"\"\xc2\x85\xc2\x86\"": "\u0085\uFFFD",
	}
	for in, want := range cases {
		if got := parseStr(t, in); got != want {
			t.Errorf("%q: got %q want %q", in, got, want)
		}
	}
}

func TestDecodeKeysFilteredAtDepth(t *testing.T) {
	var d decoder
	root, err := d.parse([]byte(`{"__name__":"x","a":[{"k\u0001":{"\u0000":"v\u001f"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := d.get(root, "a")
	o := d.elem(a, 0)
	k, v := d.member(o, 0)
	if string(d.bytes(k)) != "k\uFFFD" {
		t.Fatalf("key %q", d.bytes(k))
	}
	k2, v2 := d.member(v, 0)
	if string(d.bytes(k2)) != "\uFFFD" || string(d.bytes(v2)) != "v\uFFFD" {
		t.Fatalf("inner %q %q", d.bytes(k2), d.bytes(v2))
	}
}

func TestDecodeSyntax(t *testing.T) {
	bad := []string{
		``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`, `{"a":01}`,
		`{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`, `{"a":tru}`, `{"a":NaN}`, `{"a":Infinity}`,
		`{"a":"x}`, "{\"a\":\"\t\"}", `{"a":"\x"}`, `{"a":"\u12"}`, `{} {}`, `{"a":[1,]}`, `{"a":[}`,
		`{'a':1}`,
	}
	for _, in := range bad {
		var d decoder
		if _, err := d.parse([]byte(in)); err == nil {
			t.Errorf("%q: accepted", in)
		}
		if json.Valid([]byte(in)) && strings.HasPrefix(strings.TrimSpace(in), "{") {
			t.Errorf("%q: encoding/json says valid", in)
		}
	}
	var d decoder
	for _, in := range []string{`[1,2]`, `"x"`, `1`, `null`} {
		if _, err := d.parse([]byte(in)); err != errNotObject {
			t.Errorf("%q: err %v, want errNotObject", in, err)
		}
	}
	good := []string{` {"a" : [ 1 , -0.5e+3 , true , false , null , {} , [] ] } `, "{}\r", `{"a":1E5,"b":-0}`}
	for _, in := range good {
		if _, err := d.parse([]byte(in)); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestDecodeDepthAndSize(t *testing.T) {
	var d decoder
	deep := `{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`
	if _, err := d.parse([]byte(deep)); err != errDepth {
		t.Fatalf("deep: %v", err)
	}
	ok := `{"a":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`
	if _, err := d.parse([]byte(ok)); err != nil {
		t.Fatalf("depth %d: %v", maxDepth, err)
	}
	big := `{"a":[` + strings.Repeat(`0,`, 100000) + `0]}`
	root, err := d.parse([]byte(big))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := d.get(root, "a")
	if a.n != 100001 {
		t.Fatalf("n=%d", a.n)
	}
	// the next small line releases the big arena
	if _, err := d.parse([]byte(`{}`)); err != nil || cap(d.arena) > arenaKeep {
		t.Fatalf("arena not released: cap %d", cap(d.arena))
	}
}

func TestNumbersExact(t *testing.T) {
	var d decoder
	root, err := d.parse([]byte(`{"max":18446744073709551615,"over":18446744073709551616,"neg":-1,"s":"42","f":12.5,"big":1e400}`))
	if err != nil {
		t.Fatal(err)
	}
	get := func(k string) node { v, _ := d.get(root, k); return v }
	if v, ok := d.uintOf(get("max")); !ok || v != 1<<64-1 {
		t.Fatalf("max: %d %v", v, ok)
	}
	if _, ok := d.uintOf(get("over")); ok {
		t.Fatal("over accepted")
	}
	if _, ok := d.uintOf(get("neg")); ok {
		t.Fatal("negative accepted as uint")
	}
	if v, ok := d.intOf(get("neg")); !ok || v != -1 {
		t.Fatal("neg int")
	}
	if v, ok := d.uintOf(get("s")); !ok || v != 42 {
		t.Fatal("string number")
	}
	if v, ok := d.intOf(get("f")); !ok || v != 12 {
		t.Fatal("float truncation")
	}
	if _, ok := d.intOf(get("big")); ok {
		t.Fatal("1e400 accepted")
	}
}

// TestDecodeAgreesWithEncodingJSON cross-checks acceptance and string values on a few inputs.
func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	ins := []string{
		`{"__name__":"host-name","name":"vm-042.lab.example.com"}`,
		`{"a":"\u00e9\u4e2d\ud83d\ude00"}`,
		`{"a":[1,2,{"b":null}],"c":"x"}`,
	}
	for _, in := range ins {
		var d decoder
		root, err := d.parse([]byte(in))
		var m map[string]any
		jerr := json.Unmarshal([]byte(in), &m)
		if (err == nil) != (jerr == nil) {
			t.Fatalf("%s: ours %v, encoding/json %v", in, err, jerr)
		}
		for i := 0; i < int(root.n); i++ {
			k, v := d.member(root, i)
			if s, ok := m[string(d.bytes(k))].(string); ok && v.kind == kindString {
				if got := string(d.bytes(v)); got != s || !utf8.ValidString(got) {
					t.Fatalf("%s: %q vs %q", in, got, s)
				}
			}
		}
	}
}
